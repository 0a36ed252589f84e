//! The owner's account on the dashboard: API tokens listed, created (the
//! token shown once) and revoked, and the password changed. Only a person
//! logged in may do these, not a script with a token (see
//! [`Gate::is_person`]); the `Origin` check in front of every POST and
//! DELETE keeps other sites out.
//!
//! - `GET /api/tokens`: `{"tokens": [{"name": ...}]}`
//! - `POST /api/tokens` `{"name": ...}`: 201 `{"name": ..., "token": ...}`
//! - `DELETE /api/tokens/NAME`: 204
//! - `POST /api/password` `{"current": ..., "new": ...}`: 204 and a new
//!   session cookie; every other session ends.

use std::net::IpAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::{HeaderMap, Request, Response, StatusCode};
use mado::auth::password;
use mado::auth::tokens::{TokenError, TokenList};

use super::login::{reply as refusal, small_json, Gate};

type Reply = Response<Full<Bytes>>;

fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("valid response")
}

fn no_content() -> Reply {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::new()))
        .expect("valid response")
}

/// The refusal for anyone but a person logged in.
fn refuse_all_but_a_person(gate: &Gate, headers: &HeaderMap) -> Option<Reply> {
    if !gate.has_login() {
        return Some(refusal(
            StatusCode::CONFLICT,
            "auth.mode is \"none\": there is no password and tokens are not needed",
        ));
    }
    if !gate.is_person(headers) {
        return Some(refusal(
            StatusCode::FORBIDDEN,
            "only a person logged in on the dashboard manages tokens and the password, not an API token",
        ));
    }
    None
}

fn names(list: &TokenList) -> serde_json::Value {
    let tokens: Vec<_> = list.names().map(|name| serde_json::json!({ "name": name })).collect();
    serde_json::json!({ "tokens": tokens })
}

/// A failed change of the token list: a [`TokenError`] is the caller's
/// mistake, anything else the device's.
fn token_failure(e: &anyhow::Error) -> Reply {
    match e.downcast_ref::<TokenError>() {
        Some(TokenError::Unknown(_)) => refusal(StatusCode::NOT_FOUND, &e.to_string()),
        Some(TokenError::Exists(_)) => refusal(StatusCode::CONFLICT, &e.to_string()),
        Some(_) => refusal(StatusCode::BAD_REQUEST, &e.to_string()),
        None => {
            tracing::error!("API tokens: {e:#}");
            refusal(StatusCode::INTERNAL_SERVER_ERROR, "the token file cannot be written")
        }
    }
}

/// `GET /api/tokens`: the tokens' names (a token itself is never shown again).
pub fn list_tokens(gate: &Gate, headers: &HeaderMap) -> Reply {
    if let Some(refused) = refuse_all_but_a_person(gate, headers) {
        return refused;
    }
    match gate.store().tokens() {
        Ok(list) => json(StatusCode::OK, &names(&list)),
        Err(e) => token_failure(&e),
    }
}

/// `POST /api/tokens` with `{"name": ...}`: the new token, shown this once.
pub async fn create_token(gate: &Gate, req: Request<Incoming>) -> Reply {
    if let Some(refused) = refuse_all_but_a_person(gate, req.headers()) {
        return refused;
    }
    #[derive(serde::Deserialize)]
    struct Create {
        name: String,
    }
    let name = match small_json::<Create>(req, "{\"name\": \"...\"}").await {
        Ok(Create { name }) => name,
        Err(refused) => return refused,
    };
    match gate.store().create_token(&name) {
        Ok((token, list)) => {
            gate.tokens_changed(list);
            tracing::info!(name, "API token created on the dashboard");
            json(
                StatusCode::CREATED,
                &serde_json::json!({ "name": name, "token": token }),
            )
        }
        Err(e) => token_failure(&e),
    }
}

/// `DELETE /api/tokens/NAME`.
pub fn revoke_token(gate: &Gate, headers: &HeaderMap, name: &str) -> Reply {
    if let Some(refused) = refuse_all_but_a_person(gate, headers) {
        return refused;
    }
    match gate.store().revoke_token(name) {
        Ok(list) => {
            gate.tokens_changed(list);
            tracing::info!(name, "API token revoked on the dashboard");
            no_content()
        }
        Err(e) => token_failure(&e),
    }
}

/// `POST /api/password` with `{"current": ..., "new": ...}`: the current
/// password is checked under the login rate limit.
pub async fn change_password(gate: &Gate, req: Request<Incoming>, client: IpAddr) -> Reply {
    if let Some(refused) = refuse_all_but_a_person(gate, req.headers()) {
        return refused;
    }
    #[derive(serde::Deserialize)]
    struct Change {
        current: String,
        new: String,
    }
    let change = match small_json::<Change>(req, "{\"current\": \"...\", \"new\": \"...\"}").await {
        Ok(change) => change,
        Err(refused) => return refused,
    };
    if let Err(e) = password::check_new(&change.new) {
        return refusal(StatusCode::BAD_REQUEST, &e.to_string());
    }
    if let Err(refused) = gate.check_password(client, change.current).await {
        return refused;
    }
    let store = gate.store().clone();
    if let Err(e) = smol::unblock(move || store.set_password(&change.new)).await {
        tracing::error!("setting the password: {e:#}");
        return refusal(StatusCode::INTERNAL_SERVER_ERROR, "the password file cannot be written");
    }
    gate.password_changed()
}
