//! Reading a phone app's chat from its page source. A native app runs no
//! JavaScript, and asking the device for every bubble's text element by
//! element costs a round trip each (a second apiece on a real phone); the
//! page source (Appium's `GET /source`: UiAutomator2's or XCUITest's view
//! hierarchy as XML) holds the whole chat in one. An `appium` profile's
//! `[messages]` selectors are XPath 1.0 over it — the dialect Appium's own
//! `xpath` strategy speaks, so an expression tried in Appium Inspector means
//! the same here (sxd-xpath, a complete XPath 1.0 implementation).
//!
//! A bubble's place on the screen comes from its attributes: `bounds`
//! (`[x1,y1][x2,y2]`, UiAutomator2), or `x`/`y` (XCUITest) or `left`/`top`
//! (Appium's fake driver) with `width`/`height`.

use sxd_document::dom::Element;
use sxd_xpath::nodeset::Node;
use sxd_xpath::{Context, Factory, Value, XPath};

/// One message bubble as the page source shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceItem {
    /// The `id_attr` attribute of the item, if any.
    pub id: Option<String>,
    /// The `sender_attr` attribute of the item, if any.
    pub sender: Option<String>,
    /// The file's name: the `filename_attr` attribute, else the string
    /// value of `file_name` (its `file_name_attr` attribute when set), cut
    /// to its last path segment.
    pub filename: Option<String>,
    /// The string value of `text` (the item's own when `text` is empty).
    pub text: Option<String>,
    /// Where the item's `image` node is on the screen (x, y, width,
    /// height, in the device's units), if it has one.
    pub image: Option<[f64; 4]>,
}

/// What to read from the page source (selectors already filled in).
#[derive(Debug, Clone, Default)]
pub struct Selectors<'a> {
    /// Every bubble (absolute).
    pub item: &'a str,
    /// Attribute of an item holding a message id.
    pub id_attr: &'a str,
    /// Attribute of an item holding the sender.
    pub sender_attr: &'a str,
    /// Attribute of an item holding the file name.
    pub filename_attr: &'a str,
    /// The text, relative to an item (empty: the item's own string value).
    pub text: &'a str,
    /// The file name, relative to an item.
    pub file_name: &'a str,
    /// The attribute of `file_name`'s node to read (empty: its string value).
    pub file_name_attr: &'a str,
    /// A received picture, relative to an item.
    pub image: &'a str,
}

/// Whether `expr` is XPath 1.0 (`{login}` and `{group}` allowed).
pub fn check_xpath(expr: &str) -> Result<(), String> {
    if expr.trim().is_empty() {
        return Ok(());
    }
    let filled = expr.replace("{login}", "x").replace("{group}", "x");
    compile(&filled).map(|_| ())
}

fn compile(expr: &str) -> Result<XPath, String> {
    Factory::new()
        .build(expr)
        .map_err(|e| format!("`{expr}`: {e}"))?
        .ok_or_else(|| format!("`{expr}` is empty"))
}

/// Read every bubble from `xml`, in document order.
pub fn read(xml: &str, s: &Selectors) -> Result<Vec<SourceItem>, String> {
    let package =
        sxd_document::parser::parse(xml).map_err(|e| format!("the page source is not XML: {e}"))?;
    let doc = package.as_document();
    let ctx = Context::new();
    let item = compile(s.item)?;
    let sub = |e: &str| -> Result<Option<XPath>, String> {
        if e.trim().is_empty() {
            Ok(None)
        } else {
            compile(e).map(Some)
        }
    };
    let (text, file_name, image) = (sub(s.text)?, sub(s.file_name)?, sub(s.image)?);
    let items = match item
        .evaluate(&ctx, doc.root())
        .map_err(|e| format!("`{}`: {e}", s.item))?
    {
        Value::Nodeset(ns) => ns.document_order(),
        _ => return Err(format!("`{}` selects no elements", s.item)),
    };
    let attr = |n: Node, name: &str| -> Option<String> {
        if name.is_empty() {
            return None;
        }
        n.element()?.attribute_value(name).map(String::from)
    };
    let string = |x: &XPath, n: Node| -> Option<String> {
        match x.evaluate(&ctx, n).ok()? {
            Value::Nodeset(ns) => ns.document_order_first().map(|n| n.string_value()),
            Value::String(s) => Some(s),
            _ => None,
        }
    };
    Ok(items
        .into_iter()
        .map(|n| {
            let filename = attr(n, s.filename_attr).or_else(|| {
                let f = file_name.as_ref()?;
                let v = if s.file_name_attr.is_empty() {
                    string(f, n)?
                } else {
                    attr(first(&ctx, f, n)?, s.file_name_attr)?
                };
                Some(last_segment(&v)).filter(|v| !v.is_empty())
            });
            SourceItem {
                id: attr(n, s.id_attr),
                sender: attr(n, s.sender_attr),
                filename,
                text: match &text {
                    Some(t) => string(t, n),
                    None => Some(n.string_value()),
                },
                image: image
                    .as_ref()
                    .and_then(|x| first(&ctx, x, n))
                    .and_then(|n| n.element())
                    .and_then(bounds),
            }
        })
        .collect())
}

/// The first node (in document order) `x` selects from `n`.
fn first<'d>(ctx: &Context<'d>, x: &XPath, n: Node<'d>) -> Option<Node<'d>> {
    match x.evaluate(ctx, n).ok()? {
        Value::Nodeset(ns) => ns.document_order_first(),
        _ => None,
    }
}

/// The last segment of a path or URL, percent-decoded.
fn last_segment(v: &str) -> String {
    let v = v.split(['?', '#']).next().unwrap_or("");
    let last = v.rsplit(['/', '\\']).next().unwrap_or("").trim();
    percent_encoding::percent_decode_str(last)
        .decode_utf8()
        .map(|s| s.into_owned())
        .unwrap_or_else(|_| last.to_string())
}

/// An element's rectangle from its attributes.
fn bounds(e: Element) -> Option<[f64; 4]> {
    let num = |k: &str| e.attribute_value(k)?.trim().parse::<f64>().ok();
    if let Some(b) = e.attribute_value("bounds") {
        let n: Vec<f64> = b
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect();
        if let [x1, y1, x2, y2] = n[..] {
            return Some([x1, y1, x2 - x1, y2 - y1]);
        }
        return None;
    }
    let x = num("x").or_else(|| num("left"))?;
    let y = num("y").or_else(|| num("top"))?;
    Some([x, y, num("width")?, num("height")?])
}

#[cfg(test)]
mod tests {
    use super::{read, Selectors};

    const UIAUTOMATOR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<hierarchy rotation="0">
  <android.widget.FrameLayout bounds="[0,0][1080,2340]">
    <android.widget.LinearLayout resource-id="com.tencent.mm:id/bubble" bounds="[0,200][1080,400]">
      <android.widget.TextView resource-id="com.tencent.mm:id/text" text="hello ⟦a1b2⟧" bounds="[40,220][600,300]"/>
    </android.widget.LinearLayout>
    <android.widget.LinearLayout resource-id="com.tencent.mm:id/bubble" bounds="[0,400][1080,800]">
      <android.widget.TextView resource-id="com.tencent.mm:id/file" text="report%20x.pdf"/>
      <android.widget.ImageView resource-id="com.tencent.mm:id/img" bounds="[40,420][440,780]"/>
    </android.widget.LinearLayout>
  </android.widget.FrameLayout>
</hierarchy>"#;

    #[test]
    fn bubbles_texts_names_and_bounds_come_from_a_uiautomator_source() {
        let s = Selectors {
            item: "//*[@resource-id='com.tencent.mm:id/bubble']",
            text: ".//*[@resource-id='com.tencent.mm:id/text']/@text",
            file_name: ".//*[@resource-id='com.tencent.mm:id/file']",
            file_name_attr: "text",
            image: ".//android.widget.ImageView",
            ..Default::default()
        };
        let items = read(UIAUTOMATOR, &s).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].text.as_deref(), Some("hello ⟦a1b2⟧"));
        assert_eq!(items[0].filename, None);
        assert_eq!(items[0].image, None);
        assert_eq!(items[1].text, None);
        assert_eq!(items[1].filename.as_deref(), Some("report x.pdf"));
        assert_eq!(items[1].image, Some([40.0, 420.0, 400.0, 360.0]));
        assert!(read("<a>", &s).is_err());
    }
}
