//! Making sessions: the capabilities a profile asks for (placeholders
//! filled, free ports picked), which Selenium Grid node runs a session, and
//! Selenium's file-upload command for files on a remote endpoint.

use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{json, Value};

/// Apply `subst` to every string in `v`.
pub(super) fn substitute(v: &mut Value, subst: &impl Fn(&str) -> String) {
    match v {
        Value::String(s) => *s = subst(s),
        Value::Array(a) => a.iter_mut().for_each(|v| substitute(v, subst)),
        Value::Object(o) => o.values_mut().for_each(|v| substitute(v, subst)),
        _ => {}
    }
}

/// Replace every capability value `"{free_port}"` with a free TCP port on
/// 127.0.0.1 (a number), chosen anew for each session: Appium's Chromium
/// driver needs a distinct `appium:chromedriverPort` per parallel session.
pub(super) fn fill_free_ports(v: &mut Value) {
    match v {
        Value::String(s) if s == "{free_port}" => {
            if let Some(p) = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .ok()
                .map(|a| a.port())
            {
                *v = json!(p);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(fill_free_ports),
        Value::Object(o) => o.values_mut().for_each(fill_free_ports),
        _ => {}
    }
}

/// The URI of the Selenium Grid node that runs session `id`, asked of the
/// Grid's GraphQL endpoint (`POST {grid}/graphql`); None when `endpoint` is
/// no Grid (a chromedriver, an Appium server) or does not answer in time.
pub(super) async fn grid_node(endpoint: &str, id: &str) -> Option<String> {
    use http_body_util::{BodyExt, Full};
    let url = url::Url::parse(endpoint).ok()?.join("graphql").ok()?;
    let query = json!({
        "query": format!("{{ session (id: \"{id}\") {{ nodeUri }} }}")
    });
    let req = http::Request::post(url.as_str())
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(bytes::Bytes::from(query.to_string())))
        .ok()?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let ask = async {
        let resp = client.request(req).await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        let v: Value = serde_json::from_slice(&body).ok()?;
        v.pointer("/data/session/nodeUri")?
            .as_str()
            .map(String::from)
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
}

/// Selenium's file upload: `se/file` (Selenium 4, Grid), or `file` (the
/// older path, which chromedriver answers).
#[derive(Debug)]
pub(super) struct UploadFile(pub(super) String, pub(super) &'static str);

impl WebDriverCompatibleCommand for UploadFile {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/{}",
            session.unwrap_or_default(),
            self.1
        ))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "file": self.0 }).to_string()),
        )
    }
}
