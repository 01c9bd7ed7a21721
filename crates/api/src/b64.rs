//! Base64 as Docker's headers use it (`X-Registry-Auth`, `X-Docker-Container-Path-Stat`,
//! `auths` in config.json), on the `base64` crate: Go encodes with padding in the standard
//! or URL-safe alphabet, and clients differ, so decoding takes either alphabet, padded or
//! not.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Padded base64, standard alphabet (Go's `base64.StdEncoding`).
pub fn encode(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Padded base64, URL-safe alphabet (Go's `base64.URLEncoding`).
pub fn encode_url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(data)
}

/// Decodes either alphabet, padded or not; surrounding whitespace is ignored.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.contains(['-', '_']) {
        URL_SAFE_LENIENT.decode(s).ok()
    } else {
        STANDARD_LENIENT.decode(s).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_alphabets_decode_with_or_without_padding() {
        for data in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"user:pass",
            &[0xfb, 0xff, 0xfe],
        ] {
            assert_eq!(decode(&encode(data)).as_deref(), Some(data));
            assert_eq!(decode(&encode_url(data)).as_deref(), Some(data));
            let bare = encode_url(data);
            assert_eq!(decode(bare.trim_end_matches('=')).as_deref(), Some(data));
        }
        assert_eq!(encode(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(encode_url(&[0xfb, 0xff]), "-_8=");
        assert_eq!(decode("not base64!"), None);
    }
}
