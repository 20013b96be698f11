//! `/login`: asks once for an API key; the page's script sends it to `POST /v1/session`,
//! which answers with the session cookie, and goes back where the browser was headed.

use axum::extract::Query;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::super::layout::{self, Nav};
use super::super::Viewer;

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only a path on this site may be gone back to.
fn local(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

pub async fn page(
    viewer: Option<axum::Extension<Viewer>>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = local(q.next.as_deref()).to_string();
    if viewer.is_some_and(|v| v.tenant.is_some()) {
        return Redirect::to(&next).into_response();
    }
    let body = html! {
        div.login {
            h1 { "Log in to weir" }
            form #login-form data-next=(next) {
                label { "API key" input type="password" name="api_key" autocomplete="current-password" required autofocus; }
                button type="submit" { "Log in" }
                p #login-error.error role="alert" {}
            }
            p.dim { "The key is sent once; the browser then keeps a session cookie (HttpOnly, SameSite=Strict) for its tenant for 12 hours." }
        }
    };
    layout::shell("Log in", Nav::None, None, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::local;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(local(Some("/runs?status=failed")), "/runs?status=failed");
        assert_eq!(local(Some("//evil.example/")), "/");
        assert_eq!(local(Some("https://evil.example/")), "/");
        assert_eq!(local(Some("/\\evil.example")), "/");
        assert_eq!(local(None), "/");
    }
}
