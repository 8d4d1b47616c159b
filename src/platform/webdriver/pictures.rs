//! Pictures: a received bubble photographed once per element and session,
//! the element screenshots behind it, and files pushed to a remote
//! endpoint (Selenium's file upload) before the client is given their path.

use super::*;

impl WebDriverPlatform {
    /// The picture of a bubble (element reference `r`), photographed once
    /// per element and session. None: it went stale meanwhile, or is empty.
    pub(super) async fn picture(
        &self,
        c: &Client,
        alias: &str,
        r: &serde_json::Map<String, Value>,
    ) -> Result<Option<Arc<Picture>>, PlatformError> {
        let Some(id) = r.values().next().and_then(|v| v.as_str()) else {
            return Ok(None);
        };
        let key = format!("{alias}|{id}");
        if let Some(p) = self.screenshots.get(&key) {
            return Ok(Some(p));
        }
        let el = fantoccini::elements::Element::from_element_id(c.clone(), id.to_string().into());
        // Two shots, frames apart, must agree: a browser may first paint a
        // freshly loaded picture through another decode path (pixels ±1 in
        // a third of the picture, seen with Chromium 156), which is
        // more than what tells two fresh copies of a picture apart. Only a
        // settled picture is kept; an unsettled one is pending, and the next
        // look photographs it again.
        let Some((png, (w, h))) = self.shot(c, &el).await? else {
            return Ok(None);
        };
        match self.shot(c, &el).await? {
            Some((again, _)) if again == png => {}
            _ => return Ok(None),
        }
        let picture = tokio::task::spawn_blocking(move || Picture::from_png(&png))
            .await
            .ok()
            .flatten()
            .filter(|p| {
                (p.grey.width() as f64 - w).abs() <= 2.0
                    && (p.grey.height() as f64 - h).abs() <= 2.0
            })
            .map(Arc::new);
        if let Some(p) = &picture {
            self.screenshots.put(&key, p.clone());
        }
        Ok(picture)
    }

    /// One screenshot of picture element `el`, loaded, wholly in view and
    /// not moved while it was taken, with its size in CSS pixels; None if
    /// it cannot be taken now.
    pub(super) async fn shot(
        &self,
        c: &Client,
        el: &fantoccini::elements::Element,
    ) -> Result<Option<(Vec<u8>, (f64, f64))>, PlatformError> {
        // Whole and in view, or not yet: a screenshot of a picture cut by
        // the window or its chat's scroll box would be another picture.
        let shown = self
            .rt(c.execute_async(
                SHOW_PICTURE_SCRIPT,
                vec![serde_json::to_value(el).unwrap_or_default()],
            ))
            .await;
        let rect =
            |v: Value| -> Option<Vec<f64>> { v.as_array()?.iter().map(Value::as_f64).collect() };
        let Some(before) = shown.ok().and_then(rect).filter(|r| r.len() == 4) else {
            return Ok(None);
        };
        let png = match self.rt(el.screenshot()).await {
            Ok(png) => png,
            Err(e) => {
                let e = classify(
                    e,
                    Failure::ElementMissing,
                    "photographing a received picture",
                );
                return match e.failure {
                    Failure::SessionLost | Failure::DriverTimeout => Err(e),
                    _ => Ok(None),
                };
            }
        };
        // The client may scroll its chat while the screenshot is taken (a
        // new message arrived): then it shows another part of the page.
        let moved = self
            .rt(c.execute(
                "const r = arguments[0].getBoundingClientRect(); return [r.top, r.left];",
                vec![serde_json::to_value(el).unwrap_or_default()],
            ))
            .await
            .ok()
            .and_then(rect)
            .is_none_or(|after| {
                after.len() != 2
                    || (after[0] - before[2]).abs() > 0.5
                    || (after[1] - before[3]).abs() > 0.5
            });
        Ok((!moved).then_some((png, (before[0], before[1]))))
    }

    /// Put the file where the remote browser can read it: Selenium's
    /// `se/file` (Grid), else the older `file`; an endpoint that has
    /// neither (Appium's Chromium driver) gets the local path, which works
    /// when it runs on this machine (and is remembered, so the two failing
    /// commands are not tried again).
    pub(super) async fn push_file(
        &self,
        c: &Client,
        endpoint: &str,
        path: &Path,
    ) -> Result<String, PlatformError> {
        let local = || path.to_string_lossy().into_owned();
        if self.no_upload.lock().expect("no_upload").contains(endpoint) {
            return Ok(local());
        }
        let bytes = std::fs::read(path).map_err(|e| {
            PlatformError::new(Failure::UploadFailed, format!("{}: {e}", path.display()))
        })?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file")
            .to_string();
        let mut zipped = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut zipped);
            z.start_file(name, zip::write::SimpleFileOptions::default())
                .and_then(|_| z.write_all(&bytes).map_err(Into::into))
                .and_then(|_| z.finish().map(|_| ()))
                .map_err(|e| PlatformError::new(Failure::UploadFailed, e.to_string()))?;
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(zipped.into_inner());
        let unknown = |e: &CmdError| e.is_unknown_command() || e.is_unknown_path();
        let v = match self
            .rt(c.issue_cmd(SessionPost("se/file", json!({ "file": b64.clone() }))))
            .await
        {
            Err(e) if unknown(&e) => match self
                .rt(c.issue_cmd(SessionPost("file", json!({ "file": b64 }))))
                .await
            {
                Err(e) if unknown(&e) => {
                    self.no_upload
                        .lock()
                        .expect("no_upload")
                        .insert(endpoint.to_string());
                    return Ok(local());
                }
                other => other,
            },
            other => other,
        }
        .map_err(|e| {
            classify(
                e,
                Failure::UploadFailed,
                "pushing the file to the remote browser",
            )
        })?;
        v.as_str().map(String::from).ok_or_else(|| {
            PlatformError::new(Failure::UploadFailed, "the endpoint returned no path")
        })
    }
}
