//! Email to users about their exports: "your export is ready" (with its download link) and
//! "your export failed" (with what to do next).
//!
//! Two backends share one message format ([`Mailer`]): SMTP through lettre, for production,
//! and a directory of `.eml` files, for local runs and tests without a mail server. Either way
//! the message is the same multipart/alternative (plain text + HTML) RFC 5322 message with a
//! deterministic `Message-ID`, so a receiving system can spot a duplicate sent by a retry.
//!
//! This module must never:
//! - log a message body or its download link at info level or above: the link is a presigned
//!   URL, and its token lets anyone download the user's data (so [`Email`] and
//!   [`ExportFacts`] have a `Debug` that leaves them out);
//! - panic on bad input: a bad recipient is [`MailError::Address`], a bad sender or SMTP URL
//!   is [`MailError::Config`];
//! - let a caller's text reach a header unchecked: control characters in the subject are
//!   replaced and the `Message-ID` is validated, so no value can inject a header.

mod templates;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::AsyncWriteExt;

pub use templates::{
    BackupFacts, ExportFacts, FailureFacts, count_jobs, describe_format, escape_html,
    export_failed_email, export_ready_email, human_size, readable_time,
};

/// How long one SMTP connect or command may take before the send fails as transient.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bound of a whole SMTP send (DNS lookup, connect, TLS, every command), which lettre's
/// per-step timeout does not cover on its own: a worker must never hang on a mail server.
const SEND_DEADLINE: Duration = Duration::from_secs(60);

/// Where mail goes, as read from the service's configuration.
#[derive(Clone)]
pub struct MailConfig {
    /// `smtp://host:25` (plain, for local servers), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host:465`. `None` or blank: write files to `dir`.
    pub smtp_url: Option<String>,
    /// The `From` mailbox, e.g. `PIPELINE <no-reply@pipeline.example>`.
    pub from: String,
    /// Where `.eml` files are written when no SMTP URL is set.
    pub dir: PathBuf,
}

/// Hides the SMTP password, which the URL may carry.
impl fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailConfig")
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("from", &self.from)
            .field("dir", &self.dir)
            .finish()
    }
}

/// Sends [`Email`]s. Cheap to clone: SMTP clones share one connection pool.
#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        /// The SMTP URL without credentials, for [`Mailer::describe`] (lettre cannot say).
        endpoint: String,
    },
    Dir {
        dir: PathBuf,
        from: Mailbox,
    },
}

/// Shows [`Mailer::describe`], never credentials.
impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Mailer").field(&self.describe()).finish()
    }
}

/// One message to one recipient, ready to send.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Without angle brackets, e.g. `export-<uuid>-ready@pipeline-export`: the same for every
    /// retry of one notice, so receivers can drop duplicates.
    pub message_id: String,
}

/// Leaves the bodies out: they hold the download link and its token.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("message_id", &self.message_id)
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .field("html", &format_args!("<{} bytes>", self.html.len()))
            .finish()
    }
}

/// Why mail could not be configured or sent. [`MailError::is_transient`] says whether a
/// retry may succeed.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Bad sender address or SMTP URL, or no Tokio runtime: fix the configuration.
    #[error("mail configuration: {0}")]
    Config(String),
    /// The recipient (or the message built for it) is invalid; retrying cannot help.
    #[error("invalid email address: {0}")]
    Address(String),
    /// Connection refused or lost, timeout, TLS trouble, or a 4xx reply: retry later.
    #[error("temporary mail failure: {0}")]
    Transient(String),
    /// A 5xx reply or a server the client cannot work with: retrying cannot help.
    #[error("mail rejected: {0}")]
    Permanent(String),
    /// Writing an `.eml` file failed.
    #[error("writing the email file: {0}")]
    Io(#[from] std::io::Error),
}

impl MailError {
    /// Whether sending the same email again later may succeed. File errors count as
    /// transient: a full disk frees up, and retries are bounded by the caller anyway.
    pub fn is_transient(&self) -> bool {
        matches!(self, MailError::Transient(_) | MailError::Io(_))
    }
}

impl Mailer {
    /// SMTP when `cfg.smtp_url` is set (and not blank), else a directory of `.eml` files
    /// (created if missing).
    ///
    /// The SMTP transport starts its pool's housekeeping task on the current Tokio runtime,
    /// so this must run inside one; outside, it is a [`MailError::Config`] rather than
    /// lettre's panic.
    pub fn from_config(cfg: &MailConfig) -> Result<Mailer, MailError> {
        let from: Mailbox = cfg.from.trim().parse().map_err(|e| {
            MailError::Config(format!(
                "the sender address {:?} is not a valid mailbox: {e}",
                cfg.from
            ))
        })?;
        match cfg.smtp_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => {
                if tokio::runtime::Handle::try_current().is_err() {
                    return Err(MailError::Config(
                        "the SMTP mailer must be created inside a Tokio runtime".to_owned(),
                    ));
                }
                let endpoint = redact_url(url);
                // lettre's URL errors never echo the URL, so no password reaches the message.
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| MailError::Config(format!("invalid SMTP URL {endpoint}: {e}")))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build();
                Ok(Mailer::Smtp {
                    transport,
                    from,
                    endpoint,
                })
            }
            _ => {
                std::fs::create_dir_all(&cfg.dir)?;
                Ok(Mailer::Dir {
                    dir: cfg.dir.clone(),
                    from,
                })
            }
        }
    }

    /// Sends one email: over SMTP, or as `{dir}/{timestamp}-{message-id}.eml`, written to a
    /// hidden temporary file and renamed, so a reader never sees half a message.
    pub async fn send(&self, email: &Email) -> Result<(), MailError> {
        match self {
            Mailer::Smtp {
                transport, from, ..
            } => {
                let message = build_message(from, email)?;
                match tokio::time::timeout(SEND_DEADLINE, transport.send(message)).await {
                    Ok(Ok(_response)) => {
                        tracing::info!(message_id = %email.message_id, backend = "smtp", "email sent");
                        Ok(())
                    }
                    Ok(Err(e)) => Err(classify_smtp_error(&e)),
                    Err(_elapsed) => Err(MailError::Transient(format!(
                        "the SMTP server did not accept the message within {} s",
                        SEND_DEADLINE.as_secs()
                    ))),
                }
            }
            Mailer::Dir { dir, from } => {
                let message = build_message(from, email)?;
                let path = write_eml(dir, &email.message_id, &message.formatted()).await?;
                tracing::info!(
                    message_id = %email.message_id,
                    path = %path.display(),
                    backend = "dir",
                    "email written"
                );
                Ok(())
            }
        }
    }

    /// Checks that mail can go out without sending any: SMTP connects and answers EHLO (and
    /// STARTTLS/AUTH as the URL asks); a directory takes a file, which is then removed.
    pub async fn probe(&self) -> Result<(), MailError> {
        match self {
            Mailer::Smtp { transport, .. } => {
                match tokio::time::timeout(SMTP_TIMEOUT, transport.test_connection()).await {
                    Ok(Ok(true)) => Ok(()),
                    Ok(Ok(false)) => Err(MailError::Transient(
                        "the SMTP server did not answer NOOP".to_owned(),
                    )),
                    Ok(Err(e)) => Err(classify_smtp_error(&e)),
                    Err(_) => Err(MailError::Transient(format!(
                        "no answer within {} s",
                        SMTP_TIMEOUT.as_secs()
                    ))),
                }
            }
            Mailer::Dir { dir, .. } => {
                let probe = dir.join(format!(".probe-{}", std::process::id()));
                tokio::fs::write(&probe, b"probe").await?;
                tokio::fs::remove_file(&probe).await?;
                Ok(())
            }
        }
    }

    /// Where mail goes, for logs and startup messages: `smtp://127.0.0.1:1025` (never with
    /// credentials) or `directory /path`.
    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp { endpoint, .. } => endpoint.clone(),
            Mailer::Dir { dir, .. } => format!("directory {}", dir.display()),
        }
    }
}

/// The full message: From, To, Subject, Message-ID, Date, and a multipart/alternative body.
fn build_message(from: &Mailbox, email: &Email) -> Result<Message, MailError> {
    let to: Mailbox = email.to.trim().parse().map_err(|e| {
        MailError::Address(format!(
            "the recipient {:?} is not a valid address: {e}",
            email.to
        ))
    })?;
    let message_id = checked_message_id(&email.message_id)?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(header_safe(&email.subject))
        .message_id(Some(format!("<{message_id}>")))
        .multipart(MultiPart::alternative_plain_html(
            email.text.clone(),
            email.html.clone(),
        ))
        .map_err(|e| MailError::Address(format!("cannot build the message: {e}")))
}

/// A `Message-ID` must be one `id-left@id-right` of visible ASCII (RFC 5322 §3.6.4); anything
/// else is a caller's bug, so it is refused rather than sent malformed.
fn checked_message_id(id: &str) -> Result<&str, MailError> {
    let valid = id
        .split_once('@')
        .is_some_and(|(left, right)| !left.is_empty() && !right.is_empty() && !right.contains('@'))
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\'));
    if valid {
        Ok(id)
    } else {
        Err(MailError::Permanent(format!(
            "invalid Message-ID {id:?}: expected id@domain in visible ASCII, without brackets"
        )))
    }
}

/// Replaces control characters (CR and LF above all) so a value cannot start a new header.
fn header_safe(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Maps lettre's SMTP error to retryable or not. 4xx replies, timeouts, refused or broken
/// connections, TLS failures and garbled replies may pass; 5xx replies and client-side
/// incompatibilities (no STARTTLS, no usable AUTH mechanism) will not.
fn classify_smtp_error(e: &lettre::transport::smtp::Error) -> MailError {
    let text = e.to_string();
    if e.is_permanent() {
        MailError::Permanent(text)
    } else if e.is_transient() || e.is_timeout() {
        MailError::Transient(text)
    } else if e.is_client() {
        MailError::Permanent(text)
    } else {
        MailError::Transient(text)
    }
}

/// Writes `bytes` as `{dir}/{timestamp}-{sanitised message id}.eml` through a hidden
/// temporary file in the same directory (so the rename is atomic), synced before the rename.
async fn write_eml(dir: &Path, message_id: &str, bytes: &[u8]) -> Result<PathBuf, MailError> {
    let name = format!(
        "{}-{}.eml",
        Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
        file_safe(message_id)
    );
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = async {
        let mut file = tokio::fs::File::create(&tmp).await?;
        file.write_all(bytes).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&tmp, &path).await
    }
    .await;
    if let Err(e) = written {
        // Best effort: the write already failed, and a leftover hidden .tmp file is harmless.
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(MailError::Io(e));
    }
    Ok(path)
}

/// Keeps `[A-Za-z0-9._-]` of a message id for a file name; everything else becomes `_`.
fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `scheme://user:pass@host:port/...` → `scheme://host:port/...`.
fn redact_url(url: &str) -> String {
    let url = url.trim();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            format!("{scheme}://{host}{tail}")
        }
        None => "(an SMTP URL without scheme)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(to: &str) -> Email {
        Email {
            to: to.to_owned(),
            subject: "Hello".to_owned(),
            text: "text part".to_owned(),
            html: "<p>html part</p>".to_owned(),
            message_id: "export-1-ready@pipeline-export".to_owned(),
        }
    }

    fn from() -> Mailbox {
        "PIPELINE <no-reply@pipeline.test>".parse().unwrap()
    }

    #[test]
    fn message_has_both_parts_and_the_given_message_id() {
        let message = build_message(&from(), &email("user@example.com")).unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(
            raw.contains("Message-ID: <export-1-ready@pipeline-export>\r\n"),
            "{raw}"
        );
        assert!(
            raw.contains("Content-Type: multipart/alternative;"),
            "{raw}"
        );
        assert!(
            raw.contains("Content-Type: text/plain; charset=utf-8"),
            "{raw}"
        );
        assert!(
            raw.contains("Content-Type: text/html; charset=utf-8"),
            "{raw}"
        );
        assert!(raw.contains("To: user@example.com\r\n"), "{raw}");
        assert!(raw.contains("Date: "), "{raw}");
    }

    #[test]
    fn bad_recipients_are_address_errors() {
        for to in [
            "",
            "not an address",
            "a@",
            "@b",
            "a@b\r\nBcc: x@y.z",
            "x <y",
        ] {
            let err = build_message(&from(), &email(to)).unwrap_err();
            assert!(matches!(err, MailError::Address(_)), "{to:?}: {err:?}");
            assert!(!err.is_transient());
        }
    }

    #[test]
    fn a_subject_cannot_inject_headers() {
        let mut e = email("user@example.com");
        e.subject = "Hi\r\nBcc: attacker@example.com".to_owned();
        let raw = String::from_utf8(build_message(&from(), &e).unwrap().formatted()).unwrap();
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
    }

    #[test]
    fn message_ids_are_checked() {
        for ok in ["export-1-ready@pipeline-export", "a.b@c.d"] {
            assert!(checked_message_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "no-at",
            "<a@b>",
            "a@b@c",
            "a b@c",
            "a@b\r\nX: y",
            "@b",
            "a@",
        ] {
            assert!(
                matches!(checked_message_id(bad), Err(MailError::Permanent(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(redact_url("smtp://127.0.0.1:1025"), "smtp://127.0.0.1:1025");
        assert_eq!(
            redact_url("smtp://user:p%40ss@mail.example.com:587?tls=required"),
            "smtp://mail.example.com:587?tls=required"
        );
        assert_eq!(
            redact_url("smtps://user:secret@mail.example.com"),
            "smtps://mail.example.com"
        );
        assert!(!redact_url("nonsense user:secret").contains("secret"));
    }

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(
            file_safe("export-1f0c-ready@pipeline-export"),
            "export-1f0c-ready_pipeline-export"
        );
        assert_eq!(file_safe("../../etc/passwd"), ".._.._etc_passwd");
    }

    #[test]
    fn debug_output_hides_bodies_and_passwords() {
        let mut e = email("user@example.com");
        e.text = "https://bucket/file?X-Amz-Signature=secret".to_owned();
        e.html = e.text.clone();
        assert!(!format!("{e:?}").contains("secret"));
        let cfg = MailConfig {
            smtp_url: Some("smtp://user:secret@host:587".to_owned()),
            from: "a@b.c".to_owned(),
            dir: PathBuf::from("/tmp"),
        };
        assert!(!format!("{cfg:?}").contains("secret"));
    }

    #[test]
    fn the_smtp_mailer_needs_a_runtime_and_does_not_panic_without_one() {
        let cfg = MailConfig {
            smtp_url: Some("smtp://127.0.0.1:1025".to_owned()),
            from: "a@b.c".to_owned(),
            dir: PathBuf::from("/nonexistent"),
        };
        assert!(matches!(
            Mailer::from_config(&cfg),
            Err(MailError::Config(_))
        ));
    }
}
