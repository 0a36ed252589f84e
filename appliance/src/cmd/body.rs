//! Request bodies read with a size cap and a deadline: a body that is too
//! large (announced or sent) is refused before or while it arrives, and one
//! that never finishes does not hold its task.

use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_LENGTH;
use hyper::Request;

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Over the cap (by its `Content-Length` or by what arrived).
    TooLarge,
    /// The connection failed while it arrived.
    Broken(String),
    /// It did not arrive within the deadline.
    TimedOut,
}

/// The whole body of `req`, at most `max` bytes, within `timeout`.
pub async fn read(req: Request<Incoming>, max: usize, timeout: Duration) -> Result<Bytes, BodyError> {
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let collect = async { Some(Limited::new(req.into_body(), max).collect().await) };
    let deadline = async {
        smol::Timer::after(timeout).await;
        None
    };
    match futures_lite::future::or(collect, deadline).await {
        Some(Ok(body)) => Ok(body.to_bytes()),
        Some(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Some(Err(e)) => Err(BodyError::Broken(e.to_string())),
        None => Err(BodyError::TimedOut),
    }
}
