//! The profile's steps on a session: logging in, finding and waiting for
//! what a selector names, running a list of steps, and what a failed step
//! says (the step, the selector, the page, a screenshot).

use super::*;

impl WebDriverPlatform {
    pub(super) async fn log_in(&self, c: &Client, alias: &str) -> Result<(), PlatformError> {
        let account = self.accounts.get(alias).expect("checked alias");
        let wait = Duration::from_millis(self.profile.timeouts.page_load_ms);
        self.run_steps(
            c,
            alias,
            "login.steps",
            &self.profile.login.steps,
            wait,
            Failure::LoginFailed,
            |v| {
                v.replace("{login}", &account.login)
                    .replace("{password}", &self.passwords[alias])
            },
        )
        .await?;
        self.rt(self.wait_for(c, &self.profile.login.logged_in, wait))
            .await
            .map_err(|e| {
                classify_quiet(
                    e,
                    Failure::LoginFailed,
                    &format!("`{alias}` did not reach the logged-in page"),
                )
            })?;
        Ok(())
    }

    /// Open the login page: a web client's URL; a phone app opens with its
    /// session, so there is nothing to open.
    pub(super) async fn open_login_page(&self, c: &Client) -> Result<(), CmdError> {
        if self.profile.kind == ClientKind::Appium {
            return Ok(());
        }
        self.rt(c.goto(&self.profile.login_url(&self.base_url)))
            .await
    }

    /// Every element `sel` (CSS or a prefixed strategy) names now.
    pub(super) async fn find_all(&self, c: &Client, sel: &str) -> Result<Vec<Element>, CmdError> {
        let l = Locator::parse(sel);
        let v = c
            .issue_cmd(Find {
                using: l.using,
                value: l.value.to_string(),
                from: None,
                many: true,
            })
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(element_id)
                    .map(|id| Element::from_element_id(c.clone(), id.into()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The first element `sel` names (the endpoint's "no such element"
    /// when there is none).
    pub(super) async fn find(&self, c: &Client, sel: &str) -> Result<Element, CmdError> {
        let l = Locator::parse(sel);
        let v = c
            .issue_cmd(Find {
                using: l.using,
                value: l.value.to_string(),
                from: None,
                many: false,
            })
            .await?;
        let id = element_id(&v).ok_or_else(|| {
            CmdError::NotW3C(json!({ "unexpected element reference": v.to_string() }))
        })?;
        Ok(Element::from_element_id(c.clone(), id.into()))
    }

    /// The first element `sel` names, waiting up to `wait` for it (looking
    /// every `poll_ms`).
    pub(super) async fn wait_for(
        &self,
        c: &Client,
        sel: &str,
        wait: Duration,
    ) -> Result<Element, CmdError> {
        let deadline = Instant::now() + wait;
        let period = Duration::from_millis(self.profile.timeouts.poll_ms.clamp(20, 1000));
        loop {
            if let Some(e) = self.find_all(c, sel).await?.into_iter().next() {
                return Ok(e);
            }
            if Instant::now() >= deadline {
                return Err(CmdError::WaitTimeout);
            }
            tokio::time::sleep(period).await;
        }
    }

    /// Wait until `sel` or `other` exists; whether `other` does (checked
    /// first, so that both there counts as `other`).
    pub(super) async fn first_of(
        &self,
        c: &Client,
        sel: &str,
        other: &str,
        wait: Duration,
    ) -> Result<bool, CmdError> {
        let deadline = Instant::now() + wait;
        let period = Duration::from_millis(self.profile.timeouts.poll_ms.clamp(20, 1000));
        loop {
            if !self.find_all(c, other).await?.is_empty() {
                return Ok(true);
            }
            if !self.find_all(c, sel).await?.is_empty() {
                return Ok(false);
            }
            if Instant::now() >= deadline {
                return Err(CmdError::WaitTimeout);
            }
            tokio::time::sleep(period).await;
        }
    }

    /// Run a profile's step list (`login.steps`, `chat.open_direct` …) in
    /// order. A failed step is named: the list, the step's number, verb and
    /// selector, the page it was on (redacted) and the path of a screenshot
    /// of it where one could be taken. A `fill` step's WebDriver error is
    /// dropped, as it could echo what was typed (a password).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_steps(
        &self,
        c: &Client,
        alias: &str,
        list: &str,
        steps: &[Step],
        wait: Duration,
        during: Failure,
        subst: impl Fn(&str) -> String,
    ) -> Result<(), PlatformError> {
        for (i, step) in steps.iter().enumerate() {
            let Err(e) = self.step(c, step, wait, &subst).await else {
                continue;
            };
            let (verb, sel) = match (&step.fill, &step.click, &step.wait) {
                (Some(s), ..) => ("fill", s.as_str()),
                (_, Some(s), _) => ("click", s.as_str()),
                (.., Some(s)) => ("wait", s.as_str()),
                _ => ("execute", ""),
            };
            let page = self
                .rt(c.current_url())
                .await
                .map(|u| crate::redact::url(u.as_str()))
                .unwrap_or_else(|_| "an unknown page".into());
            let why = match &e {
                CmdError::WaitTimeout => format!("not there after {} s", wait.as_secs()),
                _ if verb == "fill" => String::new(),
                e => e.to_string(),
            };
            let mut what = format!(
                "step {} of `{list}` in profile `{}` ({verb} {}) failed on {page}",
                i + 1,
                self.profile.name,
                if sel.is_empty() {
                    "a script".into()
                } else {
                    format!("`{sel}`")
                },
            );
            if !why.is_empty() {
                what.push_str(&format!(": {why}"));
            }
            if let Some(shot) = self.screenshot_of_failure(c, alias, list, i + 1).await {
                what.push_str(&format!(" (screenshot: {})", shot.display()));
            }
            return Err(classify_quiet(e, during, &what));
        }
        Ok(())
    }

    /// A screenshot of the whole page, saved in the folder
    /// [`Self::set_failure_screenshots`] named, as
    /// `ALIAS-LIST-stepN-UNIXMS.png`; `None` without a folder or when the
    /// browser cannot take one.
    pub(super) async fn screenshot_of_failure(
        &self,
        c: &Client,
        alias: &str,
        list: &str,
        step: usize,
    ) -> Option<PathBuf> {
        let dir = self.failure_screenshots.as_ref()?;
        let png = tokio::time::timeout(Duration::from_secs(10), c.screenshot())
            .await
            .ok()?
            .ok()?;
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let path = dir.join(format!("{alias}-{list}-step{step}-{ms}.png"));
        std::fs::create_dir_all(dir).ok()?;
        std::fs::write(&path, png).ok()?;
        Some(path)
    }

    /// One `fill`, `click` (`tap`), `wait` or `execute` step; `fill` values
    /// and `execute` arguments go through `subst` (placeholders).
    pub(super) async fn step(
        &self,
        c: &Client,
        step: &Step,
        wait: Duration,
        subst: &impl Fn(&str) -> String,
    ) -> Result<(), CmdError> {
        if let (Some(unless), Some(sel)) = (&step.unless, step.locator()) {
            if self.first_of(c, sel, unless, wait).await? {
                return Ok(());
            }
        }
        if let (Some(sel), Some(value)) = (&step.fill, &step.value) {
            let el = self.rt(self.wait_for(c, sel, wait)).await?;
            self.rt(el.send_keys(&subst(value))).await?;
        } else if let Some(sel) = &step.click {
            let el = self.rt(self.wait_for(c, sel, wait)).await?;
            self.rt(el.click()).await?;
        } else if let Some(sel) = &step.wait {
            self.rt(self.wait_for(c, sel, wait)).await?;
        } else if let Some(script) = &step.execute {
            let mut args =
                serde_json::to_value(step.args.clone().unwrap_or_default()).unwrap_or_default();
            substitute(&mut args, &subst);
            self.rt(c.execute(script, vec![args])).await?;
        }
        Ok(())
    }

    /// Whether the client shows its logged-in marker and not its login page.
    pub(super) async fn logged_in(&self, c: &Client) -> Result<bool, CmdError> {
        let p = &self.profile.login;
        if self.profile.kind == ClientKind::Web {
            let v = self
                .rt(c.execute(
                    LOGGED_IN_SCRIPT,
                    vec![json!(p.logged_in), json!(p.logged_out)],
                ))
                .await?;
            return Ok(v.as_bool() == Some(true));
        }
        if self.rt(self.find_all(c, &p.logged_in)).await?.is_empty() {
            return Ok(false);
        }
        Ok(p.logged_out.is_empty() || self.rt(self.find_all(c, &p.logged_out)).await?.is_empty())
    }
}
