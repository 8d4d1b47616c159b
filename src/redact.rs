//! Keeping secrets out of what chatprobe stores and prints: a URL given with
//! credentials (`http://user:pass@host/`) is written everywhere — journal,
//! run.json, messages — with its user information replaced by `***`.

/// `url` without its user name and password (`***` in their place); text
/// that is not a URL is returned unchanged.
pub fn url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("***");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_never_survive() {
        assert_eq!(
            super::url("http://alice:s3cret@127.0.0.1:8080/x"),
            "http://***@127.0.0.1:8080/x"
        );
        assert_eq!(
            super::url("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(super::url("not a url"), "not a url");
    }
}
