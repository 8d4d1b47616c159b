//! Locators: how a profile names an element, in any strategy a WebDriver
//! endpoint answers. A selector is CSS unless it starts with a strategy's
//! prefix:
//!
//! | prefix                   | strategy (W3C / Appium)   | typical client            |
//! |--------------------------|---------------------------|---------------------------|
//! | (none) or `css:`         | `css selector`            | web                       |
//! | `xpath:`                 | `xpath`                   | web, Android, iOS         |
//! | `id:`                    | `id`                      | Android resource id       |
//! | `accessibility id:`      | `accessibility id`        | Android content-desc, iOS |
//! | `class name:`            | `class name`              | Android widget class      |
//! | `tag name:`, `link text:`| W3C                       | web                       |
//! | `-android uiautomator:`  | `-android uiautomator`    | UiAutomator2              |
//! | `-android datamatcher:`  | `-android datamatcher`    | Espresso                  |
//! | `-ios predicate string:` | `-ios predicate string`   | XCUITest                  |
//! | `-ios class chain:`      | `-ios class chain`        | XCUITest                  |
//!
//! The commands are W3C's own (`POST /session/{id}/element[s]`), issued
//! directly rather than through fantoccini's `Locator`, which knows only the
//! four W3C web strategies. Appium's `push_file` is here too.

use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::json;

/// The strategies a selector may name, by prefix.
const STRATEGIES: &[(&str, &str)] = &[
    ("css:", "css selector"),
    ("xpath:", "xpath"),
    ("id:", "id"),
    ("accessibility id:", "accessibility id"),
    ("class name:", "class name"),
    ("tag name:", "tag name"),
    ("link text:", "link text"),
    ("-android uiautomator:", "-android uiautomator"),
    ("-android datamatcher:", "-android datamatcher"),
    ("-ios predicate string:", "-ios predicate string"),
    ("-ios class chain:", "-ios class chain"),
];

/// A parsed selector: a strategy and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locator<'a> {
    /// The W3C `using` (`css selector`, `xpath`, `accessibility id` …).
    pub using: &'static str,
    /// The selector proper.
    pub value: &'a str,
}

impl<'a> Locator<'a> {
    /// Read a profile's selector: a known prefix names the strategy, else CSS.
    pub fn parse(sel: &'a str) -> Locator<'a> {
        let sel = sel.trim();
        for (prefix, using) in STRATEGIES {
            if let Some(rest) = sel.strip_prefix(prefix) {
                return Locator {
                    using,
                    value: rest.trim_start(),
                };
            }
        }
        Locator {
            using: "css selector",
            value: sel,
        }
    }

    /// Whether it can be sent: a prefix with nothing after it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.value.is_empty() && self.using != "css selector" {
            return Err(format!("`{}:` names no element", self.using));
        }
        Ok(())
    }
}

/// W3C Find Element(s), from the page or from inside an element.
#[derive(Debug)]
pub struct Find {
    /// The strategy.
    pub using: &'static str,
    /// The selector.
    pub value: String,
    /// Search inside this element (its W3C id), not the whole page.
    pub from: Option<String>,
    /// All matches (an array) or the first (an error when none).
    pub many: bool,
}

impl WebDriverCompatibleCommand for Find {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let s = session.unwrap_or_default();
        let what = if self.many { "elements" } else { "element" };
        match &self.from {
            Some(e) => base.join(&format!("session/{s}/element/{e}/{what}")),
            None => base.join(&format!("session/{s}/{what}")),
        }
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "using": self.using, "value": self.value }).to_string()),
        )
    }
}

/// Appium's `POST /session/{id}/appium/device/push_file`: put a file on
/// the device at `path` (its bytes base64-encoded in `data`).
#[derive(Debug)]
pub struct PushFile {
    /// Where on the device.
    pub path: String,
    /// The bytes, base64.
    pub data: String,
}

impl WebDriverCompatibleCommand for PushFile {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/appium/device/push_file",
            session.unwrap_or_default()
        ))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "path": self.path, "data": self.data }).to_string()),
        )
    }
}

/// The W3C id of an element reference as a find command returns it.
pub fn element_id(v: &serde_json::Value) -> Option<String> {
    v.get("element-6066-11e4-a52e-4f735466cecf")
        .or_else(|| v.get("ELEMENT"))
        .and_then(|v| v.as_str())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::Locator;

    #[test]
    fn prefixes_name_strategies_and_css_is_the_default() {
        assert_eq!(Locator::parse("#send").using, "css selector");
        assert_eq!(Locator::parse("#send").value, "#send");
        let l = Locator::parse("accessibility id: Send");
        assert_eq!((l.using, l.value), ("accessibility id", "Send"));
        let l = Locator::parse("-android uiautomator:new UiSelector().text(\"x\")");
        assert_eq!(l.using, "-android uiautomator");
        assert_eq!(l.value, "new UiSelector().text(\"x\")");
        assert_eq!(Locator::parse("xpath://a[1]").value, "//a[1]");
        assert!(Locator::parse("xpath:").check().is_err());
        assert!(Locator::parse("").check().is_ok());
    }
}
