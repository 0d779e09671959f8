//! Contact domain types. Values parse once and stay valid: [`IdentityValue::parse`] turns what a
//! person typed into the canonical form stored and compared (E.164 phones, lower-cased e-mails,
//! 64-bit Telegram ids), [`AttrDef::check_value`] checks a custom attribute value against its
//! definition.
//!
//! WhatsApp has two identity kinds rather than one composite: `whatsapp_phone` (E.164, the
//! classic WhatsApp id) and `whatsapp_user` (the business-scoped user id WhatsApp sends for users
//! who hide their number, from 2026). A contact may have either or both, and each is unique in an
//! organisation on its own, so a message arriving with only one of them still finds the contact.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use wamage_kernel::id_type;

id_type!(
    /// A contact of an organisation.
    ContactId
);
id_type!(
    /// One channel identity of a contact.
    IdentityId
);
id_type!(
    /// A tag (a coloured label) of an organisation's contacts.
    TagId
);
id_type!(
    /// A recorded merge of two contacts.
    MergeId
);
id_type!(
    /// A group (a static list) of an organisation's contacts.
    GroupId
);
id_type!(
    /// A CSV import.
    ImportId
);
id_type!(
    /// A segment (a saved filter) of an organisation's contacts.
    SegmentId
);

/// The organisation's default country when none is configured.
pub const DEFAULT_COUNTRY: &str = "US";

/// A way to reach a contact on a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// A phone number (E.164), for SMS and calls.
    Phone,
    /// An e-mail address (stored lower-cased).
    Email,
    /// A WhatsApp phone number (E.164).
    WhatsappPhone,
    /// A WhatsApp business-scoped user id (for users without a visible phone number).
    WhatsappUser,
    /// A Telegram user or chat id (64-bit integer, sent as a string).
    Telegram,
    /// A simulated customer of the Sandbox channel (its handle).
    Sandbox,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Phone => "phone",
            Self::Email => "email",
            Self::WhatsappPhone => "whatsapp_phone",
            Self::WhatsappUser => "whatsapp_user",
            Self::Telegram => "telegram",
            Self::Sandbox => "sandbox",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        Some(match s {
            "phone" => Self::Phone,
            "email" => Self::Email,
            "whatsapp_phone" => Self::WhatsappPhone,
            "whatsapp_user" => Self::WhatsappUser,
            "telegram" => Self::Telegram,
            "sandbox" => Self::Sandbox,
            _ => return None,
        })
    }

    pub fn is_phone(self) -> bool {
        matches!(self, Self::Phone | Self::WhatsappPhone)
    }
}

/// A country for parsing national phone numbers (ISO 3166-1 alpha-2, as the phone-number
/// metadata knows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Country(phonenumber::country::Id);

impl Country {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let upper = raw.trim().to_ascii_uppercase();
        if upper.len() != 2 {
            return Err("must be a two-letter country code like US or GB");
        }
        phonenumber::country::Id::from_str(&upper)
            .map(Self)
            .map_err(|_| "is not a country with a telephone numbering plan")
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }
}

/// Parses a phone number the way a person types it, in `country` unless it starts with `+`,
/// into E.164. The error says why it is not a number.
pub fn parse_phone(raw: &str, country: Country) -> Result<String, String> {
    use phonenumber::ParseError;
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if raw.chars().any(|c| c.is_alphabetic()) || !raw.chars().any(|c| c.is_ascii_digit()) {
        return Err("is not a phone number".to_owned());
    }
    let parse = |country: Option<phonenumber::country::Id>, raw: &str| {
        phonenumber::parse(country, raw).map_err(|e| match e {
            ParseError::NoNumber | ParseError::MalformedInteger(_) => {
                "is not a phone number".to_owned()
            }
            ParseError::InvalidCountryCode => "has an unknown country calling code".to_owned(),
            ParseError::TooShortAfterIdd | ParseError::TooShortNsn => "is too short".to_owned(),
            ParseError::TooLong => "is too long".to_owned(),
        })
    };
    // A number that brings its own country code is parsed without the default country:
    // phonenumber 0.3 strips the *default* country's national prefix from it (with US as the
    // default, +49 151… lost the 1 of its mobile prefix and became a landline in Hanover).
    let number = if raw.starts_with('+') {
        parse(None, raw).or_else(|_| parse(Some(country.0), raw))?
    } else {
        let number = parse(Some(country.0), raw)?;
        if number.country().id() == Some(country.0) {
            number
        } else {
            // Dialled with an international prefix (00, or 011 from North America).
            let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
            let code = number.code().value().to_string();
            ["00", "011"]
                .iter()
                .filter_map(|idd| digits.strip_prefix(idd))
                .find(|rest| rest.starts_with(&code))
                .and_then(|rest| phonenumber::parse(None, format!("+{rest}")).ok())
                .unwrap_or(number)
        }
    };
    if !number.is_valid() {
        let region = number
            .country()
            .id()
            .map_or_else(|| country.as_str().to_owned(), |id| id.as_ref().to_owned());
        return Err(format!("is not a valid number for region {region}"));
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// The national significant number of a number in E.164 (`+351912345678` → `912345678`), the
/// way people type it without the country code; `None` unless `e164` is `+` and digits starting
/// with a known country calling code. Calling codes are prefix-free, so the first of the 1–3
/// leading digits that is one is the code. The same as `national()` of the parsed number,
/// without parsing it again.
pub fn national_number(e164: &str) -> Option<String> {
    let digits = e164.strip_prefix('+')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let db = &*phonenumber::metadata::DATABASE;
    let code_len = (1..=3.min(digits.len())).find(|&n| {
        digits[..n]
            .parse::<u16>()
            .is_ok_and(|code| db.by_code(&code).is_some())
    })?;
    // An Italian leading zero is kept apart from the number (as `national()` does).
    let national = digits[code_len..].trim_start_matches('0');
    (!national.is_empty()).then(|| national.to_owned())
}

/// Turns a typed identity value into its canonical stored form.
pub fn parse_identity(kind: IdentityKind, raw: &str, country: Country) -> Result<String, String> {
    match kind {
        IdentityKind::Phone | IdentityKind::WhatsappPhone => parse_phone(raw, country),
        IdentityKind::Email => {
            let v = wamage_kernel::validate::normalize_email(raw);
            if wamage_kernel::validate::is_plausible_email(&v) {
                Ok(v)
            } else {
                Err("must be an e-mail address like name@example.com".to_owned())
            }
        }
        IdentityKind::Telegram => raw
            .trim()
            .parse::<i64>()
            .map(|n| n.to_string())
            .map_err(|_| "must be a Telegram user or chat id (a 64-bit integer)".to_owned()),
        IdentityKind::WhatsappUser | IdentityKind::Sandbox => {
            let v = raw.trim();
            if v.is_empty() || v.len() > 128 {
                Err("must be 1 to 128 characters".to_owned())
            } else if !v.chars().all(|c| c.is_ascii_graphic()) {
                Err("must be printable ASCII without spaces".to_owned())
            } else {
                Ok(v.to_owned())
            }
        }
    }
}

/// A BCP-47-ish language tag: a 2–3 letter language, then subtags of 1–8 letters or digits
/// (`en`, `pt-BR`, `zh-Hant-TW`).
pub fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let Some(lang) = parts.next() else {
        return false;
    };
    s.len() <= 35
        && (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// An IANA time zone name known to the tz database (`Europe/Lisbon`, `UTC`).
pub fn is_time_zone(s: &str) -> bool {
    chrono_tz::Tz::from_str(s).is_ok()
}

/// The type of a custom attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttrType {
    Text,
    Number,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    Boolean,
    SingleChoice,
    MultiChoice,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Number => "number",
            Self::Date => "date",
            Self::Boolean => "boolean",
            Self::SingleChoice => "single_choice",
            Self::MultiChoice => "multi_choice",
        }
    }

    pub fn from_db(s: &str) -> Self {
        match s {
            "number" => Self::Number,
            "date" => Self::Date,
            "boolean" => Self::Boolean,
            "single_choice" => Self::SingleChoice,
            "multi_choice" => Self::MultiChoice,
            _ => Self::Text,
        }
    }

    pub fn has_options(self) -> bool {
        matches!(self, Self::SingleChoice | Self::MultiChoice)
    }

    /// Whether values of this type are words a person would search for.
    pub fn is_searchable(self) -> bool {
        matches!(self, Self::Text | Self::SingleChoice | Self::MultiChoice)
    }
}

pub const ATTR_TEXT_MAX: usize = 1000;

/// `snake_case`, starting with a letter, 1–40 characters.
pub fn is_attr_key(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A custom attribute definition as the validator needs it.
#[derive(Clone, Debug)]
pub struct AttrDef {
    pub key: String,
    pub attr_type: AttrType,
    pub options: Vec<String>,
    pub required: bool,
}

impl AttrDef {
    /// Checks one value; the error says what was expected.
    pub fn check_value(&self, value: &Value) -> Result<(), String> {
        match (self.attr_type, value) {
            (AttrType::Text, Value::String(s)) => {
                if s.chars().count() > ATTR_TEXT_MAX {
                    Err(format!("must be at most {ATTR_TEXT_MAX} characters"))
                } else {
                    Ok(())
                }
            }
            (AttrType::Number, Value::Number(_)) => Ok(()),
            (AttrType::Boolean, Value::Bool(_)) => Ok(()),
            (AttrType::Date, Value::String(s)) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .filter(|_| s.len() == 10)
                .map(|_| ())
                .ok_or_else(|| "must be a date written YYYY-MM-DD".to_owned()),
            (AttrType::SingleChoice, Value::String(s)) => self.check_option(s),
            (AttrType::MultiChoice, Value::Array(items)) => {
                let mut seen = Vec::new();
                for item in items {
                    let Value::String(s) = item else {
                        return Err("must be a list of strings".to_owned());
                    };
                    self.check_option(s)?;
                    if seen.contains(&s) {
                        return Err(format!("lists {s:?} twice"));
                    }
                    seen.push(s);
                }
                Ok(())
            }
            (t, _) => Err(format!("must be of type {}", expected(t))),
        }
    }

    fn check_option(&self, s: &str) -> Result<(), String> {
        if self.options.iter().any(|o| o == s) {
            Ok(())
        } else {
            Err(format!(
                "{s:?} is not one of the options: {}",
                self.options.join(", ")
            ))
        }
    }
}

fn expected(t: AttrType) -> &'static str {
    match t {
        AttrType::Text => "text (a string)",
        AttrType::Number => "number",
        AttrType::Date => "date (a string YYYY-MM-DD)",
        AttrType::Boolean => "boolean",
        AttrType::SingleChoice => "single_choice (one of the options)",
        AttrType::MultiChoice => "multi_choice (a list of options)",
    }
}

/// A colour written `#RRGGBB` (hex digits, either case).
pub fn is_hex_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].chars().all(|c| c.is_ascii_hexdigit())
}

/// Splits text into the lower-cased words the search index holds and queries match:
/// runs of letters and digits.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The words of a search box entry. Something that looks like a phone number (only digits and
/// `+ - ( ) .` and spaces) is one word of its digits, so "+1 415" finds "+14155552671".
pub fn query_words(q: &str) -> Vec<String> {
    let phone_like = q.chars().any(|c| c.is_ascii_digit())
        && q.chars()
            .all(|c| c.is_ascii_digit() || "+-(). ".contains(c));
    let mut out: Vec<String> = if phone_like {
        vec![q.chars().filter(char::is_ascii_digit).collect()]
    } else {
        words(q).collect()
    };
    out.truncate(8);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn us() -> Country {
        Country::parse("US").unwrap()
    }

    #[test]
    fn the_national_number_is_the_parsed_ones() {
        // One number a country (and the non-geographic codes), in E.164 as stored.
        for e164 in [
            "+14155552671",
            "+351912345678",
            "+4915112345609",
            "+442079460958",
            "+390612345678",
            "+393123456789",
            "+5511987654321",
            "+919876543210",
            "+8613812345678",
            "+27821234567",
            "+6281234567890",
            "+35312345678",
            "+380501234567",
            "+80012345678",
            "+882123456789",
        ] {
            let parsed = phonenumber::parse(None, e164).unwrap();
            assert_eq!(
                national_number(e164),
                Some(parsed.national().value().to_string()),
                "{e164}"
            );
        }
        for not in ["14155552671", "+", "+1", "+999123", "+1-415", ""] {
            assert_eq!(national_number(not), None, "{not}");
        }
    }

    #[test]
    fn phones_normalise_to_e164() {
        assert_eq!(parse_phone("(415) 555-2671", us()).unwrap(), "+14155552671");
        assert_eq!(
            parse_phone("+44 20 7946 0958", us()).unwrap(),
            "+442079460958"
        );
        // A German mobile number (15x after the country code) keeps every digit, written
        // with or without the `+` and spaces, or nationally with its trunk 0.
        for raw in ["+4915112345609", "+49 151 1234 5609", "011 49 151 12345609"] {
            assert_eq!(parse_phone(raw, us()).unwrap(), "+4915112345609", "{raw}");
        }
        let de = Country::parse("DE").unwrap();
        for raw in ["0151 12345609", "+49 151 12345609", "0049 151 12345609"] {
            assert_eq!(parse_phone(raw, de).unwrap(), "+4915112345609", "{raw}");
        }
        // And a US number typed in Germany.
        assert_eq!(parse_phone("+1 415 555 2671", de).unwrap(), "+14155552671");
        assert_eq!(parse_phone("001 415 555 2671", de).unwrap(), "+14155552671");
        assert_eq!(parse_phone("12", us()).unwrap_err(), "is too short");
        assert_eq!(
            parse_phone("call me", us()).unwrap_err(),
            "is not a phone number"
        );
        assert!(
            parse_phone("(415) 000-0000", us())
                .unwrap_err()
                .contains("region")
        );
    }

    #[test]
    fn identities_parse() {
        let c = us();
        assert_eq!(
            parse_identity(IdentityKind::Email, " Ana@X.COM ", c).unwrap(),
            "ana@x.com"
        );
        assert_eq!(
            parse_identity(IdentityKind::Telegram, "-100123", c).unwrap(),
            "-100123"
        );
        assert!(parse_identity(IdentityKind::Telegram, "abc", c).is_err());
        assert!(parse_identity(IdentityKind::Telegram, "99999999999999999999", c).is_err());
        assert!(parse_identity(IdentityKind::WhatsappUser, "a b", c).is_err());
    }

    #[test]
    fn languages_and_zones() {
        assert!(is_language_tag("pt-BR") && is_language_tag("en") && is_language_tag("zh-Hant-TW"));
        assert!(!is_language_tag("english!") && !is_language_tag("e"));
        assert!(is_time_zone("Europe/Lisbon") && is_time_zone("UTC"));
        assert!(!is_time_zone("Mars/Olympus"));
    }

    #[test]
    fn attribute_values() {
        let def = |t, opts: &[&str]| AttrDef {
            key: "k".into(),
            attr_type: t,
            options: opts.iter().map(|s| (*s).to_owned()).collect(),
            required: false,
        };
        assert!(
            def(AttrType::Date, &[])
                .check_value(&json!("2024-02-29"))
                .is_ok()
        );
        assert!(
            def(AttrType::Date, &[])
                .check_value(&json!("2023-02-29"))
                .is_err()
        );
        assert!(def(AttrType::Number, &[]).check_value(&json!("3")).is_err());
        let multi = def(AttrType::MultiChoice, &["a", "b"]);
        assert!(multi.check_value(&json!(["a", "b"])).is_ok());
        assert!(multi.check_value(&json!(["a", "a"])).is_err());
        assert!(multi.check_value(&json!(["c"])).is_err());
    }

    #[test]
    fn query_words_split() {
        assert_eq!(query_words("+1 (415)"), ["1415"]);
        assert_eq!(query_words("Ana.Li@ex"), ["ana", "li", "ex"]);
        assert!(is_hex_color("#1a2B3c") && !is_hex_color("#12345") && !is_hex_color("red"));
        assert!(!is_hex_color("#12345g"));
        assert!(is_attr_key("plan_2") && !is_attr_key("Plan") && !is_attr_key("2x"));
    }
}
