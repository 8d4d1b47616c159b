//! The testbed's HTTP server (axum): the embedded web client and its JSON API.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the web client (HTML/CSS/JS embedded in the binary) |
//! | `POST /api/login` `{login, password}` | sets the `tb_session` cookie |
//! | `POST /api/logout` | ends the session |
//! | `GET /api/me` | login, contacts and groups |
//! | `GET /api/chats/{chat}/messages?after=ID` | messages visible to the caller |
//! | `POST /api/chats/{chat}/text` `{text}` | send a text |
//! | `POST /api/chats/{chat}/file` multipart `file` | send a file or image |
//! | `GET /api/files/{sha256}` | a stored file, if the caller may see it |
//! | `GET /api/files/{sha256}/thumb` | its chat thumbnail: a centre-cropped square, re-encoded as JPEG |
//!
//! `{chat}` is `direct:LOGIN` or `group:NAME`. Every `/api` call but login
//! checks the session cookie (401 without one). Uploads over the cap get 413.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, Multipart, Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;

use super::engine::{Chat, Content, Engine, SendError};

const INDEX_HTML: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const APP_CSS: &str = include_str!("web/app.css");
const COOKIE: &str = "tb_session";

/// Shared state of the server.
pub struct App {
    engine: Arc<Engine>,
    sessions: Mutex<HashMap<String, String>>,
    passwords: HashMap<String, String>,
    /// Failed logins by login name: how many in a row, and until when the
    /// next try is refused.
    failures: Mutex<HashMap<String, (u32, std::time::Instant)>>,
    /// Serve the web client without any `data-*` ids (`--no-ids`).
    pub no_ids: bool,
    /// Show pictures as square thumbnails (`--thumbnails`).
    pub thumbnails: bool,
}

/// Failed logins in a row before the testbed slows a login name down.
pub const FREE_LOGIN_FAILURES: u32 = 5;

impl App {
    /// Server state over an engine; `passwords` maps login → password.
    pub fn new(engine: Arc<Engine>, passwords: HashMap<String, String>) -> App {
        App {
            engine,
            sessions: Mutex::new(HashMap::new()),
            passwords,
            failures: Mutex::new(HashMap::new()),
            no_ids: false,
            thumbnails: false,
        }
    }
}

/// The side of a chat thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 120;
/// The JPEG quality a thumbnail is re-encoded at.
pub const THUMBNAIL_QUALITY: u8 = 70;

/// A picture's chat thumbnail, as WeChat's chat shows one: the largest
/// centred square, scaled to [`THUMBNAIL_SIDE`] and re-encoded as JPEG.
/// None if the bytes are not a picture.
pub fn thumbnail(bytes: &[u8]) -> Option<Vec<u8>> {
    let img = image::load_from_memory(bytes).ok()?;
    let s = img.width().min(img.height());
    let square = img.crop_imm((img.width() - s) / 2, (img.height() - s) / 2, s, s);
    let small = square.resize_exact(
        THUMBNAIL_SIDE,
        THUMBNAIL_SIDE,
        image::imageops::FilterType::CatmullRom,
    );
    let mut out = Vec::new();
    small
        .to_rgb8()
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut out,
            THUMBNAIL_QUALITY,
        ))
        .ok()?;
    Some(out)
}

/// The router, with uploads capped at `max_upload` bytes.
pub fn router(app: Arc<App>, max_upload: usize) -> Router {
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route(
            "/static/app.js",
            get(|State(app): State<Arc<App>>| async move {
                let mut js = APP_JS.to_string();
                if app.no_ids {
                    js = js.replacen("const NO_IDS = false;", "const NO_IDS = true;", 1);
                }
                if app.thumbnails {
                    js = js.replacen("const THUMBS = false;", "const THUMBS = true;", 1);
                }
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    js,
                )
            }),
        )
        .route(
            "/static/app.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS) }),
        )
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/chats/{chat}/messages", get(messages))
        .route("/api/chats/{chat}/text", post(send_text))
        .route(
            "/api/chats/{chat}/file",
            post(send_file).layer(DefaultBodyLimit::max(max_upload + 64 * 1024)),
        )
        .route("/api/files/{sha}", get(file))
        .route("/api/files/{sha}/thumb", get(thumb))
        .with_state(app)
}

/// An API error: a status and a message, sent as `{"error": "…"}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(json!({ "error": self.1 }))).into_response();
        // An upload refused before its body was read leaves the rest of the
        // body on the connection: the server drops it, so tell the client
        // not to send its next request there.
        if self.0 == StatusCode::PAYLOAD_TOO_LARGE {
            r.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        r
    }
}

fn err(status: StatusCode, msg: &str) -> ApiError {
    ApiError(status, msg.to_string())
}

type ApiResult = Result<Response, ApiError>;

fn session(app: &App, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string());
    token
        .and_then(|t| app.sessions.lock().expect("sessions").get(&t).cloned())
        .ok_or_else(|| err(StatusCode::UNAUTHORIZED, "log in first"))
}

#[derive(Deserialize)]
struct LoginBody {
    login: String,
    password: String,
}

async fn login(State(app): State<Arc<App>>, Json(body): Json<LoginBody>) -> ApiResult {
    // Like a real platform, slow down guessing: after a few failures in a
    // row, a login name must wait 1, 2, 4 … 60 s between tries (429 with
    // Retry-After), success or not.
    let now = std::time::Instant::now();
    if let Some((_, until)) = app.failures.lock().expect("failures").get(&body.login) {
        if *until > now {
            let secs = (*until - now).as_secs_f64().ceil().max(1.0) as u64;
            return Ok((
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                Json(json!({ "error": "too many failed logins; try again later" })),
            )
                .into_response());
        }
    }
    let ok = app
        .passwords
        .get(&body.login)
        .is_some_and(|p| constant_time_eq(p.as_bytes(), body.password.as_bytes()));
    if !ok {
        let mut f = app.failures.lock().expect("failures");
        let e = f.entry(body.login.clone()).or_insert((0, now));
        e.0 += 1;
        if e.0 >= FREE_LOGIN_FAILURES {
            let wait = 2u64.saturating_pow(e.0 - FREE_LOGIN_FAILURES).min(60);
            e.1 = now + std::time::Duration::from_secs(wait);
        }
        return Err(err(StatusCode::UNAUTHORIZED, "wrong login or password"));
    }
    app.failures.lock().expect("failures").remove(&body.login);
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = hex::encode(raw);
    app.sessions
        .lock()
        .expect("sessions")
        .insert(token.clone(), body.login.clone());
    Ok((
        [(
            header::SET_COOKIE,
            format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"),
        )],
        Json(json!({ "login": body.login })),
    )
        .into_response())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    if let Ok(user) = session(&app, &headers) {
        app.sessions
            .lock()
            .expect("sessions")
            .retain(|_, u| *u != user);
    }
    Ok((
        [(header::SET_COOKIE, format!("{COOKIE}=; Path=/; Max-Age=0"))],
        Json(json!({})),
    )
        .into_response())
}

async fn me(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    let user = session(&app, &headers)?;
    let accounts = app.engine.accounts();
    let contacts: Vec<_> = accounts
        .accounts
        .iter()
        .filter(|a| a.login != user)
        .map(|a| json!({ "login": a.login }))
        .collect();
    let me_alias = accounts
        .by_login(&user)
        .map(|a| a.alias.clone())
        .unwrap_or_default();
    let groups: Vec<_> = accounts
        .groups
        .iter()
        .filter(|g| g.members.contains(&me_alias))
        .map(|g| {
            let members: Vec<String> = g
                .members
                .iter()
                .filter_map(|m| accounts.get(m).map(|a| a.login.clone()))
                .collect();
            json!({ "name": g.name, "members": members })
        })
        .collect();
    Ok(Json(json!({ "login": user, "contacts": contacts, "groups": groups })).into_response())
}

#[derive(Deserialize)]
struct After {
    #[serde(default)]
    after: u64,
}

fn parse_chat(app: &App, user: &str, chat: &str) -> Result<Chat, ApiError> {
    let c = Chat::parse(chat).ok_or_else(|| err(StatusCode::NOT_FOUND, "no such chat"))?;
    app.engine.participants(user, &c).map_err(send_error)?;
    Ok(c)
}

fn send_error(e: SendError) -> ApiError {
    let status = match e {
        SendError::NotAllowed => StatusCode::FORBIDDEN,
        SendError::NoSuchChat => StatusCode::NOT_FOUND,
        SendError::BadImage => StatusCode::UNPROCESSABLE_ENTITY,
        SendError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    err(status, &e.to_string())
}

async fn messages(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlPath(chat): UrlPath<String>,
    Query(q): Query<After>,
) -> ApiResult {
    let user = session(&app, &headers)?;
    let chat = parse_chat(&app, &user, &chat)?;
    let list: Vec<_> = app
        .engine
        .messages(&user, &chat, q.after)
        .into_iter()
        .map(|(m, status)| {
            let mut v = serde_json::to_value(&m).expect("message serialises");
            v["status"] = json!(status);
            if let Some(sha) = &m.sha256 {
                v["url"] = json!(format!("/api/files/{sha}"));
            }
            v
        })
        .collect();
    Ok(Json(list).into_response())
}

#[derive(Deserialize)]
struct TextBody {
    text: String,
}

async fn send_text(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlPath(chat): UrlPath<String>,
    Json(body): Json<TextBody>,
) -> ApiResult {
    let user = session(&app, &headers)?;
    let chat = parse_chat(&app, &user, &chat)?;
    if body.text.trim().is_empty() {
        return Err(err(StatusCode::BAD_REQUEST, "empty message"));
    }
    let m = app
        .engine
        .send(&user, &chat, Content::Text(body.text))
        .map_err(send_error)?;
    Ok(Json(json!({ "id": m.id, "status": "sent" })).into_response())
}

async fn send_file(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlPath(chat): UrlPath<String>,
    mut multipart: Multipart,
) -> ApiResult {
    let user = session(&app, &headers)?;
    let chat = parse_chat(&app, &user, &chat)?;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| err(e.status(), &e.body_text()))?
            .ok_or_else(|| err(StatusCode::BAD_REQUEST, "no `file` field"))?;
        if field.name() != Some("file") {
            continue;
        }
        // Only the last path component of the uploaded name is kept, and only
        // for display: files are stored under their SHA-256.
        let name = field
            .file_name()
            .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).to_string())
            .filter(|n| !n.is_empty() && n != ".." && n != ".")
            .unwrap_or_else(|| "file".into());
        let bytes = field
            .bytes()
            .await
            .map_err(|e| err(e.status(), &e.body_text()))?
            .to_vec();
        if bytes.is_empty() {
            return Err(err(StatusCode::BAD_REQUEST, "empty file"));
        }
        let engine = Arc::clone(&app.engine);
        let m = tokio::task::spawn_blocking(move || {
            engine.send(&user, &chat, Content::File { name, bytes })
        })
        .await
        .map_err(|_| err(StatusCode::INTERNAL_SERVER_ERROR, "send failed"))?
        .map_err(send_error)?;
        return Ok(Json(json!({ "id": m.id, "status": "sent" })).into_response());
    }
}

/// The stored file `sha`, if the caller's session may read it (404 for a
/// file that does not exist and for one the caller may not see alike).
async fn readable(app: &App, headers: &HeaderMap, sha: &str) -> Result<Vec<u8>, ApiError> {
    let user = session(app, headers)?;
    let not_found = || err(StatusCode::NOT_FOUND, "no such file");
    let path = app.engine.file_path(sha).ok_or_else(not_found)?;
    if !app.engine.may_read_file(&user, sha) {
        return Err(not_found());
    }
    tokio::fs::read(&path).await.map_err(|_| not_found())
}

async fn file(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlPath(sha): UrlPath<String>,
) -> ApiResult {
    let bytes = readable(&app, &headers, &sha).await?;
    let ct = match image::guess_format(&bytes) {
        Ok(image::ImageFormat::Jpeg) => "image/jpeg",
        Ok(image::ImageFormat::Png) => "image/png",
        _ => "application/octet-stream",
    };
    Ok(([(header::CONTENT_TYPE, ct)], bytes).into_response())
}

async fn thumb(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlPath(sha): UrlPath<String>,
) -> ApiResult {
    let bytes = readable(&app, &headers, &sha).await?;
    let jpeg = tokio::task::spawn_blocking(move || thumbnail(&bytes))
        .await
        .ok()
        .flatten()
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such picture"))?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response())
}

/// A running testbed server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop serving and wait for the server to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Bind `addr` and serve in the background.
pub async fn serve(app: Arc<App>, addr: SocketAddr, max_upload: usize) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let router = router(app, max_upload);
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(Running {
        addr,
        shutdown: Some(tx),
        task,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_thumbnail_is_the_centre_square_scaled_and_reencoded() {
        // 800×600: a white 600×600 centre square between black bands of
        // 100 pixels; the thumbnail keeps only the square.
        let img = image::RgbImage::from_fn(800, 600, |x, _| {
            if (100..700).contains(&x) {
                image::Rgb([255, 255, 255])
            } else {
                image::Rgb([0, 0, 0])
            }
        });
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let t = super::thumbnail(&png).unwrap();
        assert_eq!(image::guess_format(&t).unwrap(), image::ImageFormat::Jpeg);
        let d = image::load_from_memory(&t).unwrap().to_luma8();
        assert_eq!(
            d.dimensions(),
            (super::THUMBNAIL_SIDE, super::THUMBNAIL_SIDE)
        );
        // The black bands were cropped away: every pixel is near white.
        assert!(
            d.pixels().all(|p| p.0[0] > 240),
            "{:?}",
            d.pixels().map(|p| p.0[0]).min()
        );
        assert!(super::thumbnail(b"not a picture").is_none());
    }
}
