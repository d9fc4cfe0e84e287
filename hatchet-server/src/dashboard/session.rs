//! Sign-in for the dashboard: an API token (the same tokens the SDKs and the REST API use), kept in an HttpOnly,
//! `SameSite=Strict` cookie and verified on every request by the server's [`Authenticator`]
//! (crate::auth::Authenticator), so a revoked or expired token signs the browser out within the auth cache TTL.
//! The tenant is the token's; nothing on a page or in a form can name another one.
//!
//! Every POST carries a CSRF token derived from the session token (HMAC-SHA256 keyed with it): a page of another
//! site can neither read it nor compute it, and `SameSite=Strict` already keeps the cookie off its requests.

use super::html::{self, esc};
use super::PageError;
use crate::auth::{AuthError, TenantId};
use crate::state::AppState;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use std::fmt::Write;
use subtle::ConstantTimeEq;

/// The session cookie.
pub(crate) const COOKIE_NAME: &str = "hatchet_session";

/// A signed-in request: the tenant of the token in the cookie, and the CSRF token of this session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The token's tenant.
    pub tenant: TenantId,
    /// What every POST form of this session must send back.
    pub csrf: String,
    /// The change generation when the request arrived (before any of its reads), for the page's live feed.
    pub generation: u64,
}

impl Session {
    /// Checks a form's CSRF token (constant time). A missing or wrong one is 403 and nothing is done.
    pub(crate) fn check_csrf(&self, sent: &str) -> Result<(), PageError> {
        if bool::from(self.csrf.as_bytes().ct_eq(sent.as_bytes())) {
            Ok(())
        } else {
            Err(PageError::Forbidden(
                "the form's CSRF token is missing or wrong; reload the page and try again".into(),
            ))
        }
    }

    /// The navigation bar and header for a page of this session.
    pub(crate) fn chrome<'a>(&'a self, active: &'a str) -> html::Chrome<'a> {
        html::Chrome {
            tenant: self.tenant.0,
            csrf: &self.csrf,
            active,
            generation: self.generation,
        }
    }
}

/// The CSRF token of a session token.
fn csrf_for(token: &str) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(token.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"pg_hatchet dashboard csrf v1");
    let mut out = String::with_capacity(64);
    for b in mac.finalize().into_bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The session token from the `Cookie` header(s), if any.
fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

impl FromRequestParts<AppState> for Session {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let generation = state.dispatch.generation();
        let token = cookie_token(&parts.headers).ok_or(PageError::SignIn)?;
        match state.auth.verify(token).await {
            Ok(tenant) => Ok(Session {
                tenant,
                csrf: csrf_for(token),
                generation,
            }),
            Err(AuthError::Backend(err)) => Err(PageError::App(err)),
            Err(_) => Err(PageError::SignIn),
        }
    }
}

/// The session cookie; `Secure` when the dashboard is reached over HTTPS (`ServerConfig::secure_cookies`).
fn session_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

fn cleared_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// The sign-in page, with an optional message (escaped here).
fn login_page(message: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(m) = message {
        let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", esc(m));
    }
    body.push_str(
        "<form method=\"post\" action=\"/login\" class=\"login\">\
         <label for=\"token\">API token</label>\
         <textarea id=\"token\" name=\"token\" rows=\"4\" required autocomplete=\"off\" spellcheck=\"false\"></textarea>\
         <button type=\"submit\" id=\"sign-in\">Sign in</button></form>\
         <p class=\"hint\">Create one with <code>hatchet-server token create --tenant ID</code>; the tenant is the \
         token's.</p>",
    );
    html::page("Sign in", None, &body)
}

#[derive(Debug, Deserialize)]
pub(crate) struct LinkQuery {
    token: Option<String>,
}

/// `GET /login`: the form; with `?token=` (only when [`dashboard_link_login`](crate::config::ServerConfig) is on, as
/// in `hatchet-server dev`) it signs in from the link.
pub(crate) async fn login_form(
    State(state): State<AppState>,
    Query(q): Query<LinkQuery>,
) -> Response {
    match q.token {
        Some(token) if state.config.dashboard_link_login => {
            sign_in(&state, token.trim(), true).await
        }
        Some(_) => (
            StatusCode::FORBIDDEN,
            Html(login_page(Some(
                "signing in from a link is only enabled by `hatchet-server dev`",
            ))),
        )
            .into_response(),
        None => no_store(Html(login_page(None)).into_response()),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

/// `POST /login`: verifies the token and sets the session cookie (or answers 401 with the form again).
pub(crate) async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    sign_in(&state, form.token.trim(), false).await
}

async fn sign_in(state: &AppState, token: &str, from_link: bool) -> Response {
    // A token is base64url segments and dots; anything else cannot be one and must not reach a header.
    let plausible = !token.is_empty()
        && token.len() <= 4096
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let verified = if plausible {
        state.auth.verify(token).await
    } else {
        Err(AuthError::Malformed)
    };
    match verified {
        Ok(_) => {
            let mut response = if from_link {
                // A page that moves on by itself instead of a redirect: the browser would treat a redirect that
                // started from another application (a terminal, a mail) as cross-site and withhold the Strict cookie.
                Html(html::page(
                    "Signed in",
                    None,
                    "<meta http-equiv=\"refresh\" content=\"0;url=/runs\"><p><a href=\"/runs\">Continue</a></p>",
                ))
                .into_response()
            } else {
                Redirect::to("/runs").into_response()
            };
            if let Ok(value) = session_cookie(token, state.config.secure_cookies).parse() {
                response.headers_mut().insert(SET_COOKIE, value);
            }
            no_store(response)
        }
        Err(AuthError::Backend(err)) => PageError::App(err).into_response(),
        Err(err) => (
            StatusCode::UNAUTHORIZED,
            Html(login_page(Some(&format!("sign-in refused: {err}")))),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /logout`: clears the cookie.
pub(crate) async fn logout(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    session.check_csrf(&form.csrf)?;
    let mut response = Redirect::to("/login").into_response();
    if let Ok(value) = cleared_cookie(state.config.secure_cookies).parse() {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    Ok(response)
}

/// Pages show live data: never from a cache.
pub(crate) fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, "a=1; hatchet_session=abc.def; b=2".parse().unwrap());
        assert_eq!(cookie_token(&headers), Some("abc.def"));
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, "hatchet_session=".parse().unwrap());
        assert_eq!(cookie_token(&headers), None);
    }

    #[test]
    fn csrf_depends_on_the_token() {
        assert_eq!(csrf_for("a"), csrf_for("a"));
        assert_ne!(csrf_for("a"), csrf_for("b"));
        assert_eq!(csrf_for("a").len(), 64);
    }
}
