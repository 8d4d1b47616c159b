//! Reading the TOML input files (accounts, policies, specs, profiles) with
//! errors that name the file, the line and the key, as every input error must.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::InputError;

/// Whether a key path names a secret (its value must never be printed).
pub fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key).to_lowercase();
    last == "password" || last.contains("secret") || last.contains("token")
}

/// Read and parse a TOML file into `T`. Unknown keys are errors when `T`
/// says `deny_unknown_fields`.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(path, format!("cannot read: {e}")).hint("check the path"))?;
    parse(path, &text)
}

/// Parse TOML text read from `path` into `T`.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, InputError> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(path, text, &e, None))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = (key != "." && !key.is_empty()).then_some(key);
        toml_error(path, text, e.inner(), key)
    })
}

fn toml_error(path: &Path, text: &str, e: &toml::de::Error, key: Option<String>) -> InputError {
    // A message about a secret's key may quote its value (`invalid type:
    // integer `123456`…`): say what is wrong without it.
    let secret = key.as_deref().is_some_and(is_secret_key);
    let message = if secret {
        "invalid value (not shown: it is a secret); write it as a quoted string".to_string()
    } else {
        e.message().trim().to_string()
    };
    let mut err = InputError::new(path, message);
    if let Some(span) = e.span() {
        let line = text[..span.start.min(text.len())].matches('\n').count() as u64 + 1;
        err = err.line(line);
    }
    if let Some(k) = key {
        err = err.key(k);
    }
    err
}
