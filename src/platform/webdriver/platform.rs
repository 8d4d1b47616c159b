//! [`Platform`] for [`WebDriverPlatform`]: sessions, chats, sends and looks
//! as the profile describes them, each a few WebDriver commands.

use super::*;

impl Platform for WebDriverPlatform {
    fn identity(&self) -> Identity {
        self.profile.identity
    }

    /// The platform's URL answers an HTTP request (any status) within 3 s
    /// (an `https` URL is not checked: taken as answering).
    async fn reachable(&self) -> bool {
        session::answers(&self.base_url, self.authorization.as_deref())
            .await
            .unwrap_or(true)
    }

    fn in_flight(&self) -> Option<&InFlight> {
        Some(&self.in_flight)
    }

    fn provenance(&self) -> Option<Value> {
        serde_json::to_value(self.endpoint_info()).ok()
    }

    async fn ensure_session(&self, alias: &str) -> Result<(), PlatformError> {
        let mut slot = self.slot(alias)?.lock().await;
        // A managed driver that died takes its sessions with it.
        if let Endpoints::Managed(m) = &self.endpoints {
            let dead = m
                .lock()
                .expect("driver")
                .as_mut()
                .is_none_or(|d| !d.alive());
            if dead {
                slot.client = None;
                slot.chat = None;
            }
        }
        if let Some(c) = slot.client.clone() {
            // Still logged in? A platform that restarted, or expired the
            // session, shows its login page: log in again in this browser.
            match self.logged_in(&c).await {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    slot.chat = None;
                    let again = async {
                        self.open_login_page(&c).await.map_err(|e| {
                            classify(e, Failure::LoginFailed, "opening the login page")
                        })?;
                        self.log_in(&c, alias).await
                    };
                    return match again.await {
                        Err(e) if e.failure == Failure::SessionLost => {
                            slot.client = None;
                            Err(e)
                        }
                        other => other,
                    };
                }
                Err(e) => {
                    let e = classify(e, Failure::SessionLost, "checking the login");
                    if e.failure != Failure::SessionLost {
                        return Err(e);
                    }
                    // Dead: rebuild below.
                    slot.client = None;
                    slot.chat = None;
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_secs(5), c.close()).await;
                    });
                }
            }
        }
        let client = self.new_session(alias, &mut slot).await?;
        slot.client = Some(client);
        slot.chat = None;
        Ok(())
    }

    async fn open_chat(&self, alias: &str, target: &Target) -> Result<bool, PlatformError> {
        let (name, value, template, steps) = match target {
            Target::Direct(peer) => (
                "login",
                self.peer_login(peer)?,
                &self.profile.chat.direct,
                &self.profile.chat.open_direct,
            ),
            Target::Group(g) => (
                "group",
                g.clone(),
                &self.profile.chat.group,
                &self.profile.chat.open_group,
            ),
        };
        let selector = fill_selector(template, name, &value);
        let needle = format!("{{{name}}}");
        let wait = Duration::from_millis(self.profile.timeouts.page_load_ms);
        self.with_client(alias, async |c, chat| {
            if chat.as_ref() == Some(target) {
                return Ok(false);
            }
            if !steps.is_empty() {
                let steps: Vec<Step> = steps
                    .iter()
                    .map(|step| {
                        let mut step = step.clone();
                        for sel in step.selectors_mut() {
                            *sel = fill_selector(sel, name, &value);
                        }
                        step
                    })
                    .collect();
                let list = match target {
                    Target::Direct(_) => "chat.open_direct",
                    Target::Group(_) => "chat.open_group",
                };
                self.run_steps(c, alias, list, &steps, wait, Failure::ChatNotFound, |v| {
                    v.replace(&needle, &value)
                })
                .await
                .map_err(|e| {
                    PlatformError::new(
                        e.failure,
                        format!("opening the chat with {target}: {}", e.message),
                    )
                })?;
                *chat = Some(target.clone());
                return Ok(true);
            }
            let el = self
                .rt(self.wait_for(c, &selector, wait))
                .await
                .map_err(|e| {
                    classify(
                        e,
                        Failure::ChatNotFound,
                        &format!("opening the chat with {target}"),
                    )
                })?;
            self.rt(el.click()).await.map_err(|e| {
                classify(
                    e,
                    Failure::ChatNotFound,
                    &format!("opening the chat with {target}"),
                )
            })?;
            *chat = Some(target.clone());
            Ok(true)
        })
        .await
    }

    async fn send(&self, alias: &str, payload: &Payload) -> Result<(), PlatformError> {
        let p = &self.profile.chat;
        let endpoint = self
            .slot(alias)
            .map_err(PlatformError::before_sending)?
            .lock()
            .await
            .endpoint
            .clone();
        self.with_client(alias, async |c, chat| match payload {
            Payload::Text(text) => {
                let text_input = self
                    .in_chat(&p.text_input, chat)
                    .map_err(PlatformError::before_sending)?;
                let send_button = self
                    .in_chat(&p.send_button, chat)
                    .map_err(PlatformError::before_sending)?;
                let input = self.rt(self.find(c, &text_input)).await.map_err(|e| {
                    classify(e, Failure::SendFailed, "finding the text input").before_sending()
                })?;
                let r = async {
                    if send_button.is_empty() {
                        self.rt(input.send_keys(&format!("{text}\u{E007}"))).await?;
                    } else {
                        self.rt(input.send_keys(text)).await?;
                        let b = self.rt(self.find(c, &send_button)).await?;
                        self.rt(b.click()).await?;
                    }
                    Ok::<(), CmdError>(())
                };
                r.await
                    .map_err(|e| classify(e, Failure::SendFailed, "sending a text"))
            }
            Payload::File(path) => {
                let local = path.canonicalize().map_err(|e| {
                    PlatformError::new(Failure::UploadFailed, format!("{}: {e}", path.display()))
                        .before_sending()
                })?;
                self.send_file(c, chat, &endpoint, &local).await
            }
        })
        .await
    }

    async fn look(&self, alias: &str) -> Result<Vec<Seen>, PlatformError> {
        let m = &self.profile.messages;
        self.with_client(alias, async |c, chat| {
            if self.profile.kind == ClientKind::Appium {
                return self.look_source(c, alias, chat).await;
            }
            let pictures = self.profile.identity.image == FileRule::Picture;
            let args = vec![
                json!(self.in_chat(&m.item, chat)?),
                json!(m.id_attr),
                json!(m.sender_attr),
                json!(m.filename_attr),
                json!(m.text),
                json!(self.profile.login.logged_out),
                json!(self.in_chat(&m.file_name, chat)?),
                json!(m.file_name_attr),
                json!(if pictures { m.image.as_str() } else { "" }),
                json!(PICTURE_TAIL),
            ];
            let v = self
                .rt(c.execute(LOOK_SCRIPT, args))
                .await
                .map_err(|e| classify(e, Failure::ElementMissing, "reading the chat view"))?;
            let look = serde_json::from_value::<Look>(v).map_err(|e| {
                PlatformError::new(
                    Failure::ElementMissing,
                    format!("unexpected chat view: {e}"),
                )
            })?;
            if look.logged_out {
                return Err(PlatformError::new(
                    Failure::LoggedOut,
                    format!("`{alias}`'s client shows its login page"),
                ));
            }
            let mut out = Vec::with_capacity(look.items.len());
            for it in look.items {
                let picture = match &it.picture {
                    Some(r) => self.picture(c, alias, r).await?,
                    None => None,
                };
                out.push(Seen {
                    id: it.id,
                    sender: it.sender,
                    filename: it.filename,
                    text: it.text,
                    picture_pending: it.pending || (it.picture.is_some() && picture.is_none()),
                    picture,
                });
            }
            Ok(out)
        })
        .await
    }
}
