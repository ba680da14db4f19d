//! Content hashes: the `sha256:<hex>` pins of `function.wasm` entries.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A SHA-256 digest, written `sha256:<64 lowercase hex digits>`.
///
/// ```
/// use wafer::Sha256Hash;
/// let hash = Sha256Hash::of(b"");
/// assert_eq!(
///     hash.to_string(),
///     "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// assert_eq!(hash.to_string().parse::<Sha256Hash>().unwrap(), hash);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Hash([u8; 32]);

impl Sha256Hash {
    /// Hashes `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Sha256Hash(Sha256::digest(bytes).into())
    }

    /// The digest as 64 lowercase hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Sha256Hash {
    type Err = String;

    /// Parses `sha256:<hex>`; upper-case hex digits are accepted.
    fn from_str(s: &str) -> Result<Self, String> {
        let hex_digits = s
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("`{s}` is not of the form sha256:<hex>"))?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut digest)
            .map_err(|_| format!("`{s}` is not sha256: followed by 64 hex digits"))?;
        Ok(Sha256Hash(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_prefix_and_length() {
        assert!("md5:00".parse::<Sha256Hash>().is_err());
        assert!("sha256:abcd".parse::<Sha256Hash>().is_err());
        assert!(
            format!("sha256:{}", "zz".repeat(32))
                .parse::<Sha256Hash>()
                .is_err()
        );
    }

    #[test]
    fn accepts_upper_case_hex() {
        let lower = Sha256Hash::of(b"x");
        let upper = format!("sha256:{}", lower.hex().to_uppercase());
        assert_eq!(upper.parse::<Sha256Hash>().unwrap(), lower);
    }
}
