//! The text of a document, as a censor's inspection would read it: txt as
//! UTF-8, docx from its `w:t` runs (tabs and breaks as white space, entities
//! decoded), pdf through `pdf-extract` with `lopdf` as a fallback (both wrapped
//! in `catch_unwind`: malformed PDFs make them panic).
//!
//! Text from PDF producers splits CJK runs with spaces, so keyword matching
//! should use [`squeeze`]d text (white space removed) on both sides.

use std::path::Path;

use quick_xml::events::Event;

use super::manifest::Format;
use super::CorpusError;
use crate::error::InputError;

/// Extract the text of a document of `format`. The result is trimmed at the end.
pub fn extract(path: &Path, bytes: &[u8], format: Format) -> Result<String, CorpusError> {
    let text = match format {
        Format::Txt => {
            let s = std::str::from_utf8(bytes)
                .map_err(|_| InputError::new(path, "text file is not UTF-8"))?;
            s.trim_start_matches('\u{feff}').to_string()
        }
        Format::Docx => docx_text(path, bytes)?,
        Format::Pdf => pdf_text(path, bytes)?,
        Format::Png | Format::Jpeg => {
            return Err(InputError::new(path, "an image has no extractable text").into())
        }
    };
    Ok(text.trim_end().to_string())
}

/// Remove all white space (for keyword matching across extraction quirks).
pub fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

fn docx_text(path: &Path, bytes: &[u8]) -> Result<String, CorpusError> {
    let xml = super::fresh::zip_entry(bytes, "word/document.xml").map_err(|e| {
        InputError::new(
            path,
            format!("corrupt DOCX: no readable word/document.xml ({e})"),
        )
    })?;
    let mut reader = quick_xml::Reader::from_reader(xml.as_slice());
    let mut buf = Vec::new();
    let mut out = String::new();
    let mut in_text = false;
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| InputError::new(path, format!("corrupt DOCX XML: {e}")))?;
        match ev {
            Event::Start(e) if e.name().as_ref() == "w:t" => in_text = true,
            Event::End(e) if e.name().as_ref() == "w:t" => in_text = false,
            Event::End(e) if e.name().as_ref() == "w:p" => out.push('\n'),
            Event::Empty(e) | Event::Start(e) if matches!(e.name().as_ref(), "w:tab") => {
                out.push('\t')
            }
            Event::Empty(e) | Event::Start(e) if matches!(e.name().as_ref(), "w:br" | "w:cr") => {
                out.push('\n')
            }
            Event::Text(t) if in_text => {
                out.push_str(&t.xml10_content());
            }
            Event::GeneralRef(r) if in_text => {
                out.push_str(&resolve_entity(&r.xml10_content()));
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

fn resolve_entity(name: &str) -> String {
    match name {
        "amp" => "&".into(),
        "lt" => "<".into(),
        "gt" => ">".into(),
        "quot" => "\"".into(),
        "apos" => "'".into(),
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x") {
                u32::from_str_radix(hex, 16).ok()
            } else if let Some(dec) = name.strip_prefix('#') {
                dec.parse().ok()
            } else {
                None
            };
            code.and_then(char::from_u32)
                .map(String::from)
                .unwrap_or_default()
        }
    }
}

fn pdf_text(path: &Path, bytes: &[u8]) -> Result<String, CorpusError> {
    if !bytes.starts_with(b"%PDF") {
        return Err(InputError::new(path, "not a PDF file (no %PDF header)").into());
    }
    let owned = bytes.to_vec();
    let first = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(&owned));
    if let Ok(Ok(text)) = first {
        return Ok(text);
    }
    let fallback = std::panic::catch_unwind(|| -> Result<String, String> {
        let doc = lopdf::Document::load_mem(bytes).map_err(|e| e.to_string())?;
        let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
        doc.extract_text(&pages).map_err(|e| e.to_string())
    });
    match fallback {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(InputError::new(path, format!("cannot read PDF text: {e}")).into()),
        Err(_) => Err(InputError::new(path, "cannot read PDF text: the PDF parser failed").into()),
    }
}
