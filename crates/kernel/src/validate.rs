//! Field validation that collects every wrong field before answering, so a form can show them all.

use crate::problem::{FieldError, Problem};

#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// Checks a trimmed length in characters (not bytes).
    pub fn length(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let n = value.trim().chars().count();
        if n < min {
            if min == 1 {
                self.error(field, "must not be empty");
            } else {
                self.error(field, format!("must be at least {min} characters"));
            }
        } else if value.chars().count() > max {
            self.error(field, format!("must be at most {max} characters"));
        }
    }

    pub fn email(&mut self, field: &str, value: &str) {
        if !is_plausible_email(value) {
            self.error(field, "must be an e-mail address like name@example.com");
        }
    }

    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) {
        if !ok {
            self.error(field, message);
        }
    }

    pub fn finish(self) -> Result<(), Problem> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(self.errors))
        }
    }
}

/// A deliberately simple e-mail check: one `@`, a non-empty local part, a dotted domain, no
/// spaces or control characters, at most 254 characters. Deliverability is proven by mail, not regex.
pub fn is_plausible_email(value: &str) -> bool {
    if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

/// E-mail addresses are compared case-insensitively: stored lower-cased and trimmed.
pub fn normalize_email(value: &str) -> String {
    value.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(is_plausible_email("ana@example.com"));
        assert!(!is_plausible_email("ana@example"));
        assert!(!is_plausible_email("ana example@x.com"));
        assert!(!is_plausible_email("@x.com"));
        assert!(!is_plausible_email("a@b@c.com"));
    }

    #[test]
    fn collects_every_error() {
        let mut v = Validator::new();
        v.length("name", "", 1, 10);
        v.length("org", &"x".repeat(11), 1, 10);
        v.email("email", "nope");
        let p = v.finish().unwrap_err();
        let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "org", "email"]);
    }
}
