//! Checks on a WHEP request before it reaches the WebRTC stack.

use str0m::change::SdpOffer;
use thiserror::Error;

/// The only content type a WHEP offer may have.
pub const SDP_CONTENT_TYPE: &str = "application/sdp";
/// Largest SDP offer accepted; browsers send a few kilobytes.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// Why a viewer could not be added; each maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WhepError {
    /// The offer is not `application/sdp` (415).
    #[error("the offer must be sent as {SDP_CONTENT_TYPE}")]
    UnsupportedMediaType,
    /// The offer is over [`MAX_OFFER_BYTES`] (413).
    #[error("the offer is larger than {MAX_OFFER_BYTES} bytes")]
    TooLarge,
    /// The offer is not valid SDP (400).
    #[error("the offer is not valid SDP: {0}")]
    MalformedSdp(String),
    /// The offer has no video section that can receive AV1 (400).
    #[error("the offer has no video section that can receive AV1")]
    NoAv1Video,
    /// The viewer limit is reached (503).
    #[error("the viewer limit of {0} is reached")]
    ViewerLimit(usize),
    /// No such session (404).
    #[error("no such session")]
    NotFound,
    /// str0m could not answer the offer (400).
    #[error("the offer could not be answered: {0}")]
    Negotiation(String),
}

impl WhepError {
    /// The HTTP status code for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnsupportedMediaType => 415,
            Self::TooLarge => 413,
            Self::MalformedSdp(_) | Self::NoAv1Video | Self::Negotiation(_) => 400,
            Self::ViewerLimit(_) => 503,
            Self::NotFound => 404,
        }
    }
}

/// Checks that a request's `Content-Type` is SDP (parameters are allowed).
pub fn check_content_type(content_type: Option<&str>) -> Result<(), WhepError> {
    let media_type = content_type.and_then(|v| v.split(';').next()).map(str::trim);
    match media_type {
        Some(t) if t.eq_ignore_ascii_case(SDP_CONTENT_TYPE) => Ok(()),
        _ => Err(WhepError::UnsupportedMediaType),
    }
}

/// Checks the content type and parses the offer.
pub fn check_offer(content_type: Option<&str>, body: &[u8]) -> Result<SdpOffer, WhepError> {
    check_content_type(content_type)?;
    if body.len() > MAX_OFFER_BYTES {
        return Err(WhepError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| WhepError::MalformedSdp("not UTF-8".into()))?;
    if !text.trim_start().starts_with("v=0") {
        return Err(WhepError::MalformedSdp("it does not start with v=0".into()));
    }
    SdpOffer::from_sdp_string(text).map_err(|e| WhepError::MalformedSdp(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_size_and_syntax_are_checked_first() {
        assert_eq!(check_offer(None, b"v=0").unwrap_err().status(), 415);
        assert_eq!(check_offer(Some("text/plain"), b"v=0").unwrap_err().status(), 415);
        let huge = vec![b'a'; MAX_OFFER_BYTES + 1];
        assert_eq!(check_offer(Some("application/sdp"), &huge).unwrap_err().status(), 413);
        for junk in [&b"hello"[..], b"v=0\r\nnonsense", &[0xff, 0xfe], b""] {
            let err = check_offer(Some("Application/SDP; charset=utf-8"), junk).unwrap_err();
            assert!(matches!(err, WhepError::MalformedSdp(_)), "{err}");
        }
    }
}
