//! How digests are spelled: lower-case hex, as run records, reports and
//! fetch manifests store them. A leaf of the hashing done while reading
//! (the hashing reader of `source`), downloading and loading schemas.

use sha2::{Digest, Sha256};

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Lower-case hex sha256 of a finished hasher.
pub(crate) fn sha256_hex(h: Sha256) -> String {
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_nothing() {
        assert_eq!(
            sha256_hex(Sha256::new()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(hex(&[0, 0xab, 0x7f]), "00ab7f");
    }
}
