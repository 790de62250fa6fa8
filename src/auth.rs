//! Who may connect: user names and passwords from a password file, and whether clients
//! without a user name are let in.
//!
//! The file is mosquitto's (`mosquitto_passwd`), so a fleet moves its credentials over as
//! they are: one `user:hash` per line, `#` comments and blank lines ignored, the hash either
//! `$7$ITERATIONS$SALT$HASH` (PBKDF2-HMAC-SHA512, base64 salt and 64-byte hash: what
//! mosquitto 2 writes) or `$6$SALT$HASH` (one SHA-512 of password then salt: mosquitto 1.x).
//! Plain-text passwords are refused: a file that holds them is a leak waiting to happen.
//!
//! Pure: parsing takes the file's text and checking takes the CONNECT's fields; the runtime
//! reads the file once at start. A check costs one PBKDF2 run (mosquitto's default of 101
//! iterations) on the shard that received the CONNECT: about 0.1 ms of CPU, measured as
//! 99–158 µs per connect in a reconnect storm against 29–43 without a password
//! (docs/benchmarks.md, "Authentication"); CONNECTs without a user name cost nothing.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::codec::ReasonCode;

/// Longest accepted iteration count: a typo must not make every CONNECT cost seconds.
const MAX_ITERATIONS: u32 = 1_000_000;
/// Entries a password file may hold.
const MAX_USERS: usize = 1_000_000;

/// A line of the password file that cannot be used, with its 1-based number.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("line {line}: {problem}")]
pub struct PasswordFileError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

/// One stored password hash.
#[derive(Clone, PartialEq, Eq)]
enum PasswordHash {
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2Sha512 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    /// `$6$`: SHA-512 of the password followed by the salt.
    Sha512 { salt: Vec<u8>, hash: Vec<u8> },
}

impl PasswordHash {
    fn parse(text: &str) -> Result<PasswordHash, String> {
        let b64 = |field: &str, what: &str| {
            STANDARD
                .decode(field)
                .map_err(|e| format!("{what} is not base64: {e}"))
        };
        let fields: Vec<&str> = text.split('$').collect();
        match fields.as_slice() {
            ["", "7", iterations, salt, hash] => {
                let iterations: u32 = iterations
                    .parse()
                    .map_err(|_| format!("iteration count `{iterations}` is not a number"))?;
                if iterations == 0 || iterations > MAX_ITERATIONS {
                    return Err(format!(
                        "iteration count {iterations} is outside 1..={MAX_ITERATIONS}"
                    ));
                }
                let (salt, hash) = (b64(salt, "salt")?, b64(hash, "hash")?);
                if hash.len() != 64 {
                    return Err(format!("hash is {} bytes, not 64 (SHA-512)", hash.len()));
                }
                Ok(PasswordHash::Pbkdf2Sha512 {
                    iterations,
                    salt,
                    hash,
                })
            }
            ["", "6", salt, hash] => {
                let (salt, hash) = (b64(salt, "salt")?, b64(hash, "hash")?);
                if hash.len() != 64 {
                    return Err(format!("hash is {} bytes, not 64 (SHA-512)", hash.len()));
                }
                Ok(PasswordHash::Sha512 { salt, hash })
            }
            _ => Err(
                "not a mosquitto_passwd hash ($7$… or $6$…); plain-text passwords are not accepted"
                    .into(),
            ),
        }
    }

    /// Constant time in the password's content (not its length).
    fn matches(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out);
                out.ct_eq(hash).into()
            }
            PasswordHash::Sha512 { salt, hash } => {
                let mut h = Sha512::new();
                h.update(password);
                h.update(salt);
                h.finalize().as_slice().ct_eq(hash).into()
            }
        }
    }
}

/// The users of a password file.
#[derive(Clone, Default)]
pub struct Credentials {
    users: HashMap<String, PasswordHash>,
}

impl std::fmt::Debug for Credentials {
    /// Never prints the hashes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({} users)", self.users.len())
    }
}

impl Credentials {
    /// Parses a mosquitto password file. A user listed twice is an error (which line wins
    /// would be a guess).
    pub fn parse(text: &str) -> Result<Credentials, PasswordFileError> {
        let mut users = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let bad = |problem: String| PasswordFileError { line, problem };
            let entry = raw.trim_end_matches('\r');
            if entry.trim().is_empty() || entry.trim_start().starts_with('#') {
                continue;
            }
            let Some((user, hash)) = entry.rsplit_once(':') else {
                return Err(bad("expected `user:hash`".into()));
            };
            if user.is_empty() {
                return Err(bad("empty user name".into()));
            }
            let hash = PasswordHash::parse(hash.trim()).map_err(bad)?;
            if users.len() >= MAX_USERS {
                return Err(bad(format!("more than {MAX_USERS} users")));
            }
            if users.insert(user.to_string(), hash).is_some() {
                return Err(bad(format!("user `{user}` is listed twice")));
            }
        }
        Ok(Credentials { users })
    }

    /// Users in the file.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when the file lists nobody.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// True when `user` is listed and `password` is theirs.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        self.users.get(user).is_some_and(|h| h.matches(password))
    }
}

/// Admission of a CONNECT's user name and password.
///
/// - No user name: admitted when anonymous clients are allowed, else 0x87 Not authorized
///   (3.1.1: 0x05).
/// - A user name with a password file: admitted when the password matches, else 0x86 Bad
///   User Name or Password (3.1.1: 0x04), also for an unknown user or a missing password
///   (the answer does not tell which).
/// - A user name without a password file: admitted only when anonymous clients are
///   allowed (the name is then just a label, as on mosquitto).
pub fn admit(
    allow_anonymous: bool,
    credentials: Option<&Credentials>,
    username: Option<&str>,
    password: Option<&[u8]>,
) -> Result<(), ReasonCode> {
    match (username, credentials) {
        (None, _) | (Some(_), None) => {
            if allow_anonymous {
                Ok(())
            } else {
                Err(ReasonCode::NOT_AUTHORIZED)
            }
        }
        (Some(user), Some(creds)) => match password {
            Some(p) if creds.verify(user, p) => Ok(()),
            _ => Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `mosquitto_passwd -c -b pw alice 's3cret pass'` and `-b pw bob hunter2`
    /// (mosquitto 2.0.11): the file format is checked against the real tool.
    const MOSQUITTO_FILE: &str = "\
alice:$7$101$25a6oOoXVgNT3wCK$JQyEqg4XYYR8FKro69WEKDEDguSxSIsgOiE8yqwglQGI+/E2XZaGdcfIX3HQ4vwsyf14wAM8IExivKjvNHmtmA==
bob:$7$101$3ku7LAvSZOAJ20LQ$NaCB68fyPHKImw9knfZrueBZdRtxa3mG4QaMdIn/XjTsxST6Aw0ZTq0gABGo/RUG8qpE97YqfSyudSmWpgN2MA==
";

    #[test]
    fn mosquitto_passwd_hashes_verify() {
        let c = Credentials::parse(MOSQUITTO_FILE).unwrap();
        assert_eq!(c.len(), 2);
        assert!(c.verify("alice", b"s3cret pass"));
        assert!(c.verify("bob", b"hunter2"));
        assert!(!c.verify("alice", b"hunter2"));
        assert!(!c.verify("alice", b"s3cret pas"));
        assert!(!c.verify("carol", b"hunter2"));
        assert!(!c.verify("bob", b""));
    }

    #[test]
    fn sha512_hashes_of_mosquitto_1_verify() {
        // $6$: base64(salt) $ base64(sha512(password ‖ salt)).
        let salt = b"0123456789ab";
        let mut h = Sha512::new();
        h.update(b"pw");
        h.update(salt);
        let line = format!(
            "dave:$6${}${}",
            STANDARD.encode(salt),
            STANDARD.encode(h.finalize())
        );
        let c = Credentials::parse(&line).unwrap();
        assert!(c.verify("dave", b"pw"));
        assert!(!c.verify("dave", b"pW"));
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let text = format!("# fleet users\n\n{MOSQUITTO_FILE}\n   \n");
        assert_eq!(Credentials::parse(&text).unwrap().len(), 2);
    }

    #[test]
    fn bad_lines_name_their_number_and_problem() {
        let cases = [
            ("alice:secret\n", 1, "plain-text"),
            ("# c\nnocolon\n", 2, "user:hash"),
            (":$6$YQ==$YQ==\n", 1, "empty user"),
            ("a:$7$x$YQ==$YQ==\n", 1, "not a number"),
            ("a:$7$0$YQ==$YQ==\n", 1, "outside"),
            ("a:$7$101$!!$YQ==\n", 1, "salt is not base64"),
            ("a:$7$101$YQ==$YQ==\n", 1, "not 64"),
        ];
        for (text, line, words) in cases {
            let e = Credentials::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(words), "{text:?}: {e}");
        }
        let twice = format!("{MOSQUITTO_FILE}{}", MOSQUITTO_FILE.lines().next().unwrap());
        let e = Credentials::parse(&twice).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.problem.contains("listed twice"), "{e}");
    }

    #[test]
    fn admission_follows_the_documented_table() {
        let c = Credentials::parse(MOSQUITTO_FILE).unwrap();
        let bad = Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD);
        let denied = Err(ReasonCode::NOT_AUTHORIZED);
        // Anonymous allowed (the default).
        assert_eq!(admit(true, None, None, None), Ok(()));
        assert_eq!(admit(true, None, Some("x"), Some(b"y")), Ok(()));
        assert_eq!(admit(true, Some(&c), None, None), Ok(()));
        // A user name is checked whenever there is a file, anonymous or not.
        assert_eq!(admit(true, Some(&c), Some("bob"), Some(b"hunter2")), Ok(()));
        assert_eq!(admit(true, Some(&c), Some("bob"), Some(b"nope")), bad);
        assert_eq!(admit(true, Some(&c), Some("bob"), None), bad);
        assert_eq!(admit(true, Some(&c), Some("eve"), Some(b"hunter2")), bad);
        // Anonymous refused.
        assert_eq!(admit(false, Some(&c), None, None), denied);
        assert_eq!(admit(false, Some(&c), None, Some(b"hunter2")), denied);
        assert_eq!(
            admit(false, Some(&c), Some("bob"), Some(b"hunter2")),
            Ok(())
        );
        assert_eq!(admit(false, None, Some("bob"), Some(b"hunter2")), denied);
    }

    #[test]
    fn debug_output_hides_the_hashes() {
        let c = Credentials::parse(MOSQUITTO_FILE).unwrap();
        let shown = format!("{c:?}");
        assert_eq!(shown, "Credentials(2 users)");
    }
}
