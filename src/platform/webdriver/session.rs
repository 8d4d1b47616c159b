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

/// Whether `url` answers a GET (any status) within 3 s; `None` when it
/// cannot be asked here (not plain `http`).
pub(super) async fn answers(url: &str, authorization: Option<&str>) -> Option<bool> {
    if !url.starts_with("http://") {
        return None;
    }
    let mut req = http::Request::get(url)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .ok()?;
    if let Some(a) = authorization.and_then(|a| http::HeaderValue::from_str(a).ok()) {
        req.headers_mut().insert(http::header::AUTHORIZATION, a);
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    Some(matches!(
        tokio::time::timeout(Duration::from_secs(3), client.request(req)).await,
        Ok(Ok(_))
    ))
}

/// The platform URL without its credentials, and those credentials as an
/// HTTP `Authorization` header value (Basic), if it carried any: the
/// browser is only ever given the bare URL, so the credentials reach no
/// history, session file or log of its profile.
pub(super) fn split_credentials(base_url: &str) -> (String, Option<String>) {
    use base64::Engine;
    let Ok(mut u) = url::Url::parse(base_url) else {
        return (base_url.to_string(), None);
    };
    if u.username().is_empty() && u.password().is_none() {
        return (base_url.to_string(), None);
    }
    let decode = |s: &str| percent_decode(s);
    let user = decode(u.username());
    let pass = decode(u.password().unwrap_or(""));
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    );
    (u.to_string(), Some(header))
}

/// `%XX` escapes of a URL's user or password, decoded.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A POST to `session/{id}/PATH` with a JSON body: the commands fantoccini
/// has no method for. Selenium's file upload is `se/file` (Selenium 4,
/// Grid) or `file` (the older path, which chromedriver answers), `{"file":
/// base64 zip}`; a Chrome DevTools command is `goog/cdp/execute`, `{"cmd",
/// "params"}` (Chromium endpoints, also behind Selenium Grid).
#[derive(Debug)]
pub(super) struct SessionPost(pub(super) &'static str, pub(super) Value);

impl WebDriverCompatibleCommand for SessionPost {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/{}",
            session.unwrap_or_default(),
            self.0
        ))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.1.to_string()))
    }
}
