//! Templates as the builder edits them, the checks Meta would apply before a review, variable
//! mapping and rendering, and the translation to and from the Graph API's component shapes.
//!
//! Variables are written `{{1}}`, `{{2}}`, … (positional, numbered from 1 without gaps) or
//! `{{first_name}}` (named: lower-case letters, digits and underscores), never both in one
//! template. Each variable has a key: `header.<v>`, `body.<v>`, or `button.<index>` for a URL
//! button's suffix and a copy-code button's code. A [`Mapping`] says where each key's value
//! comes from (a contact field, a custom attribute or a fixed value) and its fallback.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use wamage_channels::provider::{
    OutboundContent, ReplyButton, TemplateButtonParam, TemplateMessage, TemplateParam,
};
use wamage_contacts::{SendContact, VarField};
use wamage_kernel::validate::Validator;

wamage_kernel::id_type!(
    /// A message template (one name and language of a channel).
    TemplateId
);

/// Longest body Meta accepts.
pub const BODY_MAX: usize = 1024;
/// Longest local (Telegram/Sandbox) body.
pub const LOCAL_BODY_MAX: usize = 4096;
/// Longest header text and footer.
pub const HEADER_MAX: usize = 60;
pub const FOOTER_MAX: usize = 60;
pub const BUTTON_TEXT_MAX: usize = 25;
pub const BUTTONS_MAX: usize = 10;

/// WhatsApp templates are reviewed by Meta; local ones are plain text for Telegram and the
/// Sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKind {
    Whatsapp,
    Local,
}

impl TemplateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Whatsapp => "whatsapp",
            Self::Local => "local",
        }
    }

    pub fn from_db(s: &str) -> Self {
        if s == "whatsapp" {
            Self::Whatsapp
        } else {
            Self::Local
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Category {
    #[serde(rename = "MARKETING")]
    Marketing,
    #[serde(rename = "UTILITY")]
    Utility,
    #[serde(rename = "AUTHENTICATION")]
    Authentication,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Marketing => "MARKETING",
            Self::Utility => "UTILITY",
            Self::Authentication => "AUTHENTICATION",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "MARKETING" => Self::Marketing,
            "UTILITY" => Self::Utility,
            "AUTHENTICATION" => Self::Authentication,
            _ => return None,
        })
    }

    /// The consent purpose a send of this category needs.
    pub fn purpose(self) -> wamage_contacts::ConsentPurpose {
        match self {
            Self::Marketing => wamage_contacts::ConsentPurpose::Marketing,
            Self::Utility | Self::Authentication => wamage_contacts::ConsentPurpose::Utility,
        }
    }
}

/// Where a template stands. WhatsApp: `draft` until submitted, then Meta's verdicts; local
/// templates are `approved` when saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TemplateStatus {
    Draft,
    Pending,
    Approved,
    Rejected,
    Paused,
    Disabled,
}

impl TemplateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Paused => "paused",
            Self::Disabled => "disabled",
        }
    }

    pub fn from_db(s: &str) -> Self {
        match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "rejected" => Self::Rejected,
            "paused" => Self::Paused,
            "disabled" => Self::Disabled,
            _ => Self::Draft,
        }
    }

    /// Meta's status or webhook event name (`APPROVED`, `IN_APPEAL`, `PENDING_DELETION`, …).
    pub fn from_meta(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "APPROVED" | "REINSTATED" => Self::Approved,
            "PENDING" | "IN_APPEAL" => Self::Pending,
            "REJECTED" | "LIMIT_EXCEEDED" => Self::Rejected,
            "PAUSED" | "FLAGGED" => Self::Paused,
            "DISABLED" | "DELETED" | "PENDING_DELETION" | "ARCHIVED" => Self::Disabled,
            _ => return None,
        })
    }
}

/// The header: text (at most one variable) or a media sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum Header {
    Text {
        text: String,
        /// The sample value of its variable (required when it has one).
        #[serde(default)]
        example: Option<String>,
    },
    Image {
        /// A sample media URL (also the default media of sends).
        example: String,
    },
    Video {
        example: String,
    },
    Document {
        example: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Body {
    pub text: String,
    /// One sample per variable, in order of first appearance.
    #[serde(default)]
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Button {
    QuickReply {
        text: String,
    },
    /// A link; the URL may end with `{{1}}`, a per-send suffix.
    Url {
        text: String,
        url: String,
        #[serde(default)]
        example: Option<String>,
    },
    Phone {
        text: String,
        phone: String,
    },
    /// Copies a code (per send) to the clipboard.
    CopyCode {
        example: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Components {
    #[serde(default)]
    pub header: Option<Header>,
    pub body: Body,
    #[serde(default)]
    pub footer: Option<String>,
    #[serde(default)]
    pub buttons: Vec<Button>,
}

/// Where one variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VarSource {
    /// `fixed`, `contact.name`, `contact.first_name`, `contact.company`, `contact.email`,
    /// `contact.phone`, `contact.language` or `attr.<key>`.
    pub source: String,
    /// The value of a `fixed` source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Used when the source has no value for a contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// Variable key → source.
pub type Mapping = BTreeMap<String, VarSource>;

/// A placeholder's name: `1`, `2`, … or `first_name`.
fn placeholders(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("has a {{ without a closing }}".to_owned());
        };
        let name = after[..end].trim();
        let positional =
            !name.is_empty() && name.len() <= 3 && name.bytes().all(|b| b.is_ascii_digit());
        let named = !name.is_empty()
            && name.len() <= 64
            && name.as_bytes()[0].is_ascii_lowercase()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !positional && !named {
            return Err(format!(
                "{{{{{name}}}}} is not a variable: use {{{{1}}}}, {{{{2}}}}, … or a lower-case name like {{{{first_name}}}}"
            ));
        }
        out.push(name.to_owned());
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// Distinct names in order of first appearance.
fn distinct(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    out
}

fn is_positional(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_digit())
}

/// Checks positional numbering (1..n, no gaps) of one text's variables.
fn check_numbering(v: &mut Validator, field: &str, vars: &[String]) {
    let mut nums: Vec<u32> = vars.iter().filter_map(|n| n.parse().ok()).collect();
    nums.sort_unstable();
    nums.dedup();
    for (i, n) in nums.iter().enumerate() {
        let want = u32::try_from(i).unwrap_or(u32::MAX) + 1;
        if *n != want {
            v.error(
                field,
                format!("variables must be numbered {{{{1}}}}, {{{{2}}}}, … without gaps: {{{{{want}}}}} is missing"),
            );
            return;
        }
    }
}

fn is_http_url(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://"))
        && s.len() > 10
        && s.len() <= 2000
        && !s.contains(char::is_whitespace)
}

/// Template names: lower-case letters, digits and underscores, up to 512.
pub fn valid_name(name: &str) -> bool {
    (1..=512).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Meta's language codes: `en`, `pt_BR`, `zh_CN`, `fil`.
pub fn valid_language(l: &str) -> bool {
    let (lang, region) = match l.split_once('_') {
        Some((a, b)) => (a, Some(b)),
        None => (l, None),
    };
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
}

/// A checked template's variables, keyed as mappings key them, in send order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables {
    pub header: Vec<String>,
    pub body: Vec<String>,
    /// Indexes of buttons that take a value (URL suffix, copy code).
    pub buttons: Vec<usize>,
    pub named: bool,
}

impl Variables {
    pub fn keys(&self) -> Vec<String> {
        let mut out: Vec<String> = self.header.iter().map(|v| format!("header.{v}")).collect();
        out.extend(self.body.iter().map(|v| format!("body.{v}")));
        out.extend(self.buttons.iter().map(|i| format!("button.{i}")));
        out
    }
}

/// Finds the variables of `c` (no checks beyond syntax; syntax errors are skipped).
pub fn variables_of(c: &Components) -> Variables {
    let header = match &c.header {
        Some(Header::Text { text, .. }) => distinct(&placeholders(text).unwrap_or_default()),
        _ => Vec::new(),
    };
    let body = distinct(&placeholders(&c.body.text).unwrap_or_default());
    let buttons = c
        .buttons
        .iter()
        .enumerate()
        .filter(|(_, b)| match b {
            Button::Url { url, .. } => url.contains("{{"),
            Button::CopyCode { .. } => true,
            _ => false,
        })
        .map(|(i, _)| i)
        .collect();
    let named = header.iter().chain(body.iter()).any(|n| !is_positional(n));
    Variables {
        header,
        body,
        buttons,
        named,
    }
}

/// Everything Meta would reject before a review (or a local template could not carry), as
/// field errors under `components.…`, `name`, `language`. Returns the variables.
pub fn check(
    v: &mut Validator,
    kind: TemplateKind,
    name: &str,
    language: &str,
    category: Category,
    c: &Components,
) -> Variables {
    if !valid_name(name) {
        v.error(
            "name",
            "must be 1–512 lower-case letters, digits and underscores (like order_update)",
        );
    }
    if !valid_language(language) {
        v.error(
            "language",
            "must be a language code like en, en_US or pt_BR",
        );
    }
    let body_max = if kind == TemplateKind::Whatsapp {
        BODY_MAX
    } else {
        LOCAL_BODY_MAX
    };
    let body = c.body.text.trim();
    let mut body_vars = Vec::new();
    if body.is_empty() {
        v.error("components.body.text", "is required");
    } else if c.body.text.chars().count() > body_max {
        v.error(
            "components.body.text",
            format!("must be at most {body_max} characters"),
        );
    }
    match placeholders(&c.body.text) {
        Ok(names) => body_vars = distinct(&names),
        Err(e) => v.error("components.body.text", e),
    }
    let named = body_vars.iter().any(|n| !is_positional(n));
    let positional = body_vars.iter().any(|n| is_positional(n));
    if named && positional {
        v.error(
            "components.body.text",
            "mixes numbered and named variables: use one kind",
        );
    }
    if positional {
        check_numbering(v, "components.body.text", &body_vars);
    }
    if kind == TemplateKind::Whatsapp && !body_vars.is_empty() {
        if body.starts_with("{{") {
            v.error(
                "components.body.text",
                "cannot start with a variable: add text before it",
            );
        }
        if body.ends_with("}}") {
            v.error(
                "components.body.text",
                "cannot end with a variable: add text after it",
            );
        }
        if c.body.text.contains("\n\n\n") {
            v.error(
                "components.body.text",
                "cannot have more than two line breaks in a row",
            );
        }
    }
    // Samples: one per variable, for Meta's reviewers (and the builder's preview).
    if kind == TemplateKind::Whatsapp {
        if c.body.examples.len() != body_vars.len() {
            v.error(
                "components.body.examples",
                format!(
                    "needs one sample value per variable ({} expected, {} given)",
                    body_vars.len(),
                    c.body.examples.len()
                ),
            );
        }
        for (i, e) in c.body.examples.iter().enumerate() {
            if e.trim().is_empty() {
                v.error(&format!("components.body.examples[{i}]"), "is required");
            } else if e.chars().count() > 200 {
                v.error(
                    &format!("components.body.examples[{i}]"),
                    "must be at most 200 characters",
                );
            }
        }
    }
    if category == Category::Authentication {
        if body_vars.len() != 1 {
            v.error(
                "components.body.text",
                "an authentication template has exactly one variable: the code",
            );
        }
        if matches!(
            c.header,
            Some(Header::Image { .. } | Header::Video { .. } | Header::Document { .. })
        ) {
            v.error(
                "components.header",
                "an authentication template has no media",
            );
        }
    }
    let mut header_vars = Vec::new();
    match &c.header {
        None => {}
        Some(_) if kind == TemplateKind::Local => {
            v.error(
                "components.header",
                "Telegram and Sandbox templates have no header",
            );
        }
        Some(Header::Text { text, example }) => {
            let t = text.trim();
            if t.is_empty() {
                v.error("components.header.text", "is required");
            } else if text.chars().count() > HEADER_MAX {
                v.error(
                    "components.header.text",
                    format!("must be at most {HEADER_MAX} characters"),
                );
            }
            if text.contains('\n') {
                v.error("components.header.text", "cannot contain line breaks");
            }
            match placeholders(text) {
                Ok(names) => header_vars = distinct(&names),
                Err(e) => v.error("components.header.text", e),
            }
            if header_vars.len() > 1 {
                v.error("components.header.text", "may have at most one variable");
            }
            if let Some(n) = header_vars.first() {
                if is_positional(n) && n != "1" {
                    v.error("components.header.text", "its variable must be {{1}}");
                }
                if is_positional(n) == named && !body_vars.is_empty() {
                    v.error(
                        "components.header.text",
                        "uses a different kind of variable than the body",
                    );
                }
                if example.as_deref().is_none_or(|e| e.trim().is_empty()) {
                    v.error(
                        "components.header.example",
                        "needs a sample value for its variable",
                    );
                }
            }
        }
        Some(
            Header::Image { example } | Header::Video { example } | Header::Document { example },
        ) if !is_http_url(example) => {
            v.error(
                "components.header.example",
                "must be the http(s) URL of a sample file",
            );
        }
        Some(_) => {}
    }
    if let Some(f) = &c.footer {
        if kind == TemplateKind::Local {
            v.error(
                "components.footer",
                "Telegram and Sandbox templates have no footer",
            );
        } else if f.chars().count() > FOOTER_MAX {
            v.error(
                "components.footer",
                format!("must be at most {FOOTER_MAX} characters"),
            );
        } else if f.contains("{{") {
            v.error("components.footer", "cannot contain variables");
        }
    }
    check_buttons(v, kind, &c.buttons);
    let vars = variables_of(c);
    Variables {
        header: header_vars,
        body: body_vars,
        buttons: vars.buttons,
        named,
    }
}

fn check_buttons(v: &mut Validator, kind: TemplateKind, buttons: &[Button]) {
    if buttons.len() > BUTTONS_MAX {
        v.error(
            "components.buttons",
            format!("at most {BUTTONS_MAX} buttons"),
        );
    }
    let (mut urls, mut phones, mut codes) = (0, 0, 0);
    let mut quick_runs = 0;
    let mut prev_quick = false;
    for (i, b) in buttons.iter().enumerate() {
        let f = |x: &str| format!("components.buttons[{i}].{x}");
        let text_ok = |v: &mut Validator, t: &str| {
            if t.trim().is_empty() {
                v.error(&f("text"), "is required");
            } else if t.chars().count() > BUTTON_TEXT_MAX {
                v.error(
                    &f("text"),
                    format!("must be at most {BUTTON_TEXT_MAX} characters"),
                );
            }
            if t.contains("{{") {
                v.error(&f("text"), "cannot contain variables");
            }
        };
        let quick = matches!(b, Button::QuickReply { .. });
        if quick && !prev_quick {
            quick_runs += 1;
        }
        prev_quick = quick;
        match b {
            Button::QuickReply { text } => text_ok(v, text),
            Button::Url { text, url, example } => {
                text_ok(v, text);
                urls += 1;
                let vars = placeholders(url).unwrap_or_else(|_| vec!["?".into()]);
                if !is_http_url(url.split("{{").next().unwrap_or_default()) {
                    v.error(&f("url"), "must be an http(s) URL");
                }
                if !vars.is_empty() {
                    if vars.len() > 1 || vars[0] != "1" || !url.trim_end().ends_with("{{1}}") {
                        v.error(&f("url"), "may only end with the variable {{1}}");
                    }
                    if example.as_deref().is_none_or(|e| e.trim().is_empty()) {
                        v.error(&f("example"), "needs a sample value for the URL's variable");
                    }
                }
            }
            Button::Phone { text, phone } => {
                text_ok(v, text);
                phones += 1;
                let digits = phone.strip_prefix('+').unwrap_or("");
                if !(7..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    v.error(
                        &f("phone"),
                        "must be a phone number in E.164, like +14155550123",
                    );
                }
                if kind == TemplateKind::Local {
                    v.error(
                        &f("type"),
                        "Telegram and Sandbox templates have no call buttons",
                    );
                }
            }
            Button::CopyCode { example } => {
                codes += 1;
                if example.trim().is_empty() || example.chars().count() > 15 {
                    v.error(&f("example"), "must be a sample code of 1–15 characters");
                }
                if kind == TemplateKind::Local {
                    v.error(
                        &f("type"),
                        "Telegram and Sandbox templates have no copy-code buttons",
                    );
                }
            }
        }
    }
    if urls > 2 {
        v.error("components.buttons", "at most 2 URL buttons");
    }
    if phones > 1 {
        v.error("components.buttons", "at most 1 call button");
    }
    if codes > 1 {
        v.error("components.buttons", "at most 1 copy-code button");
    }
    if quick_runs > 1 {
        v.error(
            "components.buttons",
            "quick replies must be next to each other (before or after the other buttons)",
        );
    }
}

/// Checks a mapping's sources against the template's variables (unknown keys, sources).
pub fn check_mapping(v: &mut Validator, field: &str, vars: &Variables, m: &Mapping) {
    let keys = vars.keys();
    for (k, s) in m {
        let f = format!("{field}.{k}");
        if !keys.contains(k) {
            v.error(&f, "is not a variable of this template");
            continue;
        }
        if s.source == "fixed" {
            if s.value.as_deref().is_none_or(|x| x.trim().is_empty()) {
                v.error(&format!("{f}.value"), "is required for a fixed value");
            }
        } else if VarField::parse(&s.source).is_none() {
            v.error(
                &format!("{f}.source"),
                "must be fixed, contact.name, contact.first_name, contact.company, contact.email, contact.phone, contact.language or attr.<key>",
            );
        }
        for (x, val) in [("value", &s.value), ("fallback", &s.fallback)] {
            if val.as_deref().is_some_and(|t| t.chars().count() > 1024) {
                v.error(&format!("{f}.{x}"), "must be at most 1024 characters");
            }
        }
    }
}

/// The sample value of a variable key (what a preview without a contact shows).
pub fn example_of(c: &Components, vars: &Variables, key: &str) -> Option<String> {
    let (part, name) = key.split_once('.')?;
    match part {
        "header" => match &c.header {
            Some(Header::Text { example, .. }) => example.clone(),
            _ => None,
        },
        "body" => {
            let i = vars.body.iter().position(|n| n == name)?;
            c.body.examples.get(i).cloned()
        }
        "button" => {
            let i: usize = name.parse().ok()?;
            match c.buttons.get(i)? {
                Button::Url { example, .. } => example.clone(),
                Button::CopyCode { example } => Some(example.clone()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The fields a mapping needs from every contact (sources without a fallback).
pub fn required_fields(vars: &Variables, m: &Mapping) -> Vec<VarField> {
    let mut out = Vec::new();
    for k in vars.keys() {
        if let Some(s) = m.get(&k)
            && s.source != "fixed"
            && s.fallback.as_deref().is_none_or(|f| f.trim().is_empty())
            && let Some(f) = VarField::parse(&s.source)
            && !out.contains(&f)
        {
            out.push(f);
        }
    }
    out
}

/// Values by variable key; with the keys that have none when some are missing.
pub type Resolved = Result<HashMap<String, String>, (HashMap<String, String>, Vec<String>)>;

/// Resolves every variable for one contact (`None`: a preview, samples stand in for contact
/// data). `Err` lists the keys with no value and no fallback.
pub fn resolve(
    c: &Components,
    vars: &Variables,
    m: &Mapping,
    contact: Option<&SendContact>,
) -> Resolved {
    let mut values = HashMap::new();
    let mut missing = Vec::new();
    for k in vars.keys() {
        let v = match m.get(&k) {
            Some(s) if s.source == "fixed" => s.value.clone().filter(|x| !x.trim().is_empty()),
            Some(s) => match (contact, VarField::parse(&s.source)) {
                (Some(ct), Some(f)) => ct.field(&f),
                (None, Some(_)) => example_of(c, vars, &k),
                _ => None,
            }
            .or_else(|| s.fallback.clone().filter(|x| !x.trim().is_empty())),
            None if contact.is_none() => example_of(c, vars, &k),
            None => None,
        };
        match v {
            Some(v) => {
                values.insert(k, v);
            }
            None => missing.push(k),
        }
    }
    if missing.is_empty() {
        Ok(values)
    } else {
        Err((values, missing))
    }
}

/// Replaces `{{v}}` in `text` with `values["<part>.v"]` (unknown ones stay as written).
pub fn fill(text: &str, part: &str, values: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        match values.get(&format!("{part}.{name}")) {
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[start..start + 4 + end]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A template as the customer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Preview {
    pub header: Option<PreviewHeader>,
    pub body: String,
    pub footer: Option<String>,
    pub buttons: Vec<PreviewButton>,
    /// Variable keys with no value and no fallback (shown as written).
    pub missing: Vec<String>,
    /// The value of every resolved variable key (what a send would carry).
    pub values: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PreviewHeader {
    pub format: String,
    pub text: Option<String>,
    pub media_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PreviewButton {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    pub url: Option<String>,
    pub phone: Option<String>,
    pub code: Option<String>,
}

/// Renders the template with these values.
pub fn render(c: &Components, values: &HashMap<String, String>, missing: Vec<String>) -> Preview {
    let header = c.header.as_ref().map(|h| match h {
        Header::Text { text, .. } => PreviewHeader {
            format: "text".into(),
            text: Some(fill(text, "header", values)),
            media_url: None,
        },
        Header::Image { example } | Header::Video { example } | Header::Document { example } => {
            PreviewHeader {
                format: match h {
                    Header::Image { .. } => "image",
                    Header::Video { .. } => "video",
                    _ => "document",
                }
                .into(),
                text: None,
                media_url: Some(example.clone()),
            }
        }
    });
    let buttons = c
        .buttons
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let value = values.get(&format!("button.{i}")).cloned();
            match b {
                Button::QuickReply { text } => PreviewButton {
                    kind: "quick_reply".into(),
                    text: text.clone(),
                    url: None,
                    phone: None,
                    code: None,
                },
                Button::Url { text, url, .. } => PreviewButton {
                    kind: "url".into(),
                    text: text.clone(),
                    url: Some(match &value {
                        Some(v) => url.replace("{{1}}", v),
                        None => url.clone(),
                    }),
                    phone: None,
                    code: None,
                },
                Button::Phone { text, phone } => PreviewButton {
                    kind: "phone".into(),
                    text: text.clone(),
                    url: None,
                    phone: Some(phone.clone()),
                    code: None,
                },
                Button::CopyCode { example } => PreviewButton {
                    kind: "copy_code".into(),
                    text: "Copy code".into(),
                    url: None,
                    phone: None,
                    code: Some(value.unwrap_or_else(|| example.clone())),
                },
            }
        })
        .collect();
    Preview {
        header,
        body: fill(&c.body.text, "body", values),
        footer: c.footer.clone(),
        buttons,
        missing,
        values: values.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// The message a send carries: WhatsApp template parameters, or the rendered text (with
/// quick replies and links as buttons) for local templates.
pub fn outbound(
    kind: TemplateKind,
    name: &str,
    language: &str,
    c: &Components,
    vars: &Variables,
    values: &HashMap<String, String>,
) -> OutboundContent {
    match kind {
        TemplateKind::Local => {
            let buttons = c
                .buttons
                .iter()
                .enumerate()
                .filter_map(|(i, b)| match b {
                    Button::QuickReply { text } => Some(ReplyButton {
                        id: format!("tpl:{name}:{i}"),
                        title: text.clone(),
                    }),
                    _ => None,
                })
                .collect();
            let mut body = fill(&c.body.text, "body", values);
            for (i, b) in c.buttons.iter().enumerate() {
                if let Button::Url { text, url, .. } = b {
                    let link = match values.get(&format!("button.{i}")) {
                        Some(v) => url.replace("{{1}}", v),
                        None => url.clone(),
                    };
                    body.push_str(&format!("\n{text}: {link}"));
                }
            }
            OutboundContent::Text {
                body,
                preview_url: true,
                buttons,
            }
        }
        TemplateKind::Whatsapp => {
            let param = |part: &str, n: &String| TemplateParam::Text {
                text: values
                    .get(&format!("{part}.{n}"))
                    .cloned()
                    .unwrap_or_default(),
                parameter_name: vars.named.then(|| n.clone()),
            };
            let header = match &c.header {
                Some(Header::Text { .. }) => {
                    vars.header.iter().map(|n| param("header", n)).collect()
                }
                Some(Header::Image { example }) => vec![TemplateParam::Image {
                    link: example.clone(),
                }],
                Some(Header::Video { example }) => vec![TemplateParam::Video {
                    link: example.clone(),
                }],
                Some(Header::Document { example }) => vec![TemplateParam::Document {
                    link: example.clone(),
                    filename: None,
                }],
                None => Vec::new(),
            };
            let body = vars.body.iter().map(|n| param("body", n)).collect();
            let buttons = vars
                .buttons
                .iter()
                .filter_map(|i| {
                    let value = values.get(&format!("button.{i}")).cloned()?;
                    let sub_type = match c.buttons.get(*i)? {
                        Button::Url { .. } => "url",
                        Button::CopyCode { .. } => "copy_code",
                        _ => return None,
                    };
                    Some(TemplateButtonParam {
                        sub_type: sub_type.into(),
                        index: u32::try_from(*i).unwrap_or(0),
                        value,
                    })
                })
                .collect();
            OutboundContent::Template(TemplateMessage {
                name: name.to_owned(),
                language: language.to_owned(),
                header,
                body,
                buttons,
            })
        }
    }
}

/// The Graph API `message_templates` creation body.
pub fn meta_body(
    name: &str,
    language: &str,
    category: Category,
    c: &Components,
    vars: &Variables,
) -> Value {
    let mut components = Vec::new();
    let named_examples = |names: &[String], samples: &[String]| -> Vec<Value> {
        names
            .iter()
            .zip(samples)
            .map(|(n, e)| json!({"param_name": n, "example": e}))
            .collect()
    };
    match &c.header {
        Some(Header::Text { text, example }) => {
            let mut h = json!({"type": "HEADER", "format": "TEXT", "text": text});
            if let Some(e) = example.as_ref().filter(|_| !vars.header.is_empty()) {
                h["example"] = if vars.named {
                    json!({"header_text_named_params": named_examples(&vars.header, std::slice::from_ref(e))})
                } else {
                    json!({"header_text": [e]})
                };
            }
            components.push(h);
        }
        Some(
            h @ (Header::Image { example }
            | Header::Video { example }
            | Header::Document { example }),
        ) => {
            let format = match h {
                Header::Image { .. } => "IMAGE",
                Header::Video { .. } => "VIDEO",
                _ => "DOCUMENT",
            };
            components.push(json!({"type": "HEADER", "format": format,
                "example": {"header_handle": [example]}}));
        }
        None => {}
    }
    if category == Category::Authentication {
        components.push(json!({"type": "BODY", "add_security_recommendation": true}));
    } else {
        let mut b = json!({"type": "BODY", "text": c.body.text});
        if !vars.body.is_empty() {
            b["example"] = if vars.named {
                json!({"body_text_named_params": named_examples(&vars.body, &c.body.examples)})
            } else {
                json!({"body_text": [c.body.examples]})
            };
        }
        components.push(b);
    }
    if let Some(f) = &c.footer {
        components.push(json!({"type": "FOOTER", "text": f}));
    }
    if !c.buttons.is_empty() {
        let buttons: Vec<Value> = c
            .buttons
            .iter()
            .map(|b| match b {
                Button::QuickReply { text } => json!({"type": "QUICK_REPLY", "text": text}),
                Button::Url { text, url, example } => {
                    let mut x = json!({"type": "URL", "text": text, "url": url});
                    if let Some(e) = example.as_ref().filter(|_| url.contains("{{")) {
                        x["example"] = json!([url.replace("{{1}}", e)]);
                    }
                    x
                }
                Button::Phone { text, phone } => {
                    json!({"type": "PHONE_NUMBER", "text": text, "phone_number": phone})
                }
                Button::CopyCode { example } if category == Category::Authentication => {
                    let _ = example;
                    json!({"type": "OTP", "otp_type": "COPY_CODE"})
                }
                Button::CopyCode { example } => json!({"type": "COPY_CODE", "example": example}),
            })
            .collect();
        components.push(json!({"type": "BUTTONS", "buttons": buttons}));
    }
    json!({
        "name": name,
        "language": language,
        "category": category.as_str(),
        "parameter_format": if vars.named { "NAMED" } else { "POSITIONAL" },
        "components": components,
    })
}

/// A template as Meta lists it, in the builder's shape (best effort: what the builder cannot
/// show is left out).
pub fn from_meta(t: &Value) -> Components {
    let mut c = Components {
        header: None,
        body: Body {
            text: String::new(),
            examples: Vec::new(),
        },
        footer: None,
        buttons: Vec::new(),
    };
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    for comp in t
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match comp
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("HEADER") => {
                let format = str_of(comp, "format")
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                let media = comp
                    .pointer("/example/header_handle/0")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                c.header = Some(match format.as_str() {
                    "IMAGE" => Header::Image { example: media },
                    "VIDEO" => Header::Video { example: media },
                    "DOCUMENT" => Header::Document { example: media },
                    _ => Header::Text {
                        text: str_of(comp, "text").unwrap_or_default(),
                        example: comp
                            .pointer("/example/header_text/0")
                            .or_else(|| comp.pointer("/example/header_text_named_params/0/example"))
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    },
                });
            }
            Some("BODY") => {
                c.body.text = str_of(comp, "text").unwrap_or_default();
                if let Some(ex) = comp
                    .pointer("/example/body_text/0")
                    .and_then(Value::as_array)
                {
                    c.body.examples = ex
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect();
                } else if let Some(ex) = comp
                    .pointer("/example/body_text_named_params")
                    .and_then(Value::as_array)
                {
                    c.body.examples = ex
                        .iter()
                        .filter_map(|p| p.get("example").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect();
                }
            }
            Some("FOOTER") => c.footer = str_of(comp, "text"),
            Some("BUTTONS") => {
                for b in comp
                    .get("buttons")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let text = str_of(b, "text").unwrap_or_default();
                    match str_of(b, "type")
                        .unwrap_or_default()
                        .to_ascii_uppercase()
                        .as_str()
                    {
                        "QUICK_REPLY" => c.buttons.push(Button::QuickReply { text }),
                        "URL" => {
                            let url = str_of(b, "url").unwrap_or_default();
                            let example =
                                b.pointer("/example/0")
                                    .and_then(Value::as_str)
                                    .and_then(|full| {
                                        let prefix = url.split("{{").next().unwrap_or_default();
                                        full.strip_prefix(prefix).map(str::to_owned)
                                    });
                            c.buttons.push(Button::Url { text, url, example });
                        }
                        "PHONE_NUMBER" => c.buttons.push(Button::Phone {
                            text,
                            phone: str_of(b, "phone_number").unwrap_or_default(),
                        }),
                        "COPY_CODE" | "OTP" => c.buttons.push(Button::CopyCode {
                            example: str_of(b, "example").unwrap_or_else(|| "123456".to_owned()),
                        }),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if c.body.text.is_empty() && t.get("category").and_then(Value::as_str) == Some("AUTHENTICATION")
    {
        c.body.text = "{{1}} is your verification code.".to_owned();
        c.body.examples = vec!["123456".to_owned()];
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(body: &str, examples: &[&str]) -> Components {
        Components {
            header: None,
            body: Body {
                text: body.to_owned(),
                examples: examples.iter().map(|s| (*s).to_owned()).collect(),
            },
            footer: None,
            buttons: Vec::new(),
        }
    }

    fn errors(kind: TemplateKind, name: &str, c: &Components) -> Vec<String> {
        let mut v = Validator::new();
        check(&mut v, kind, name, "en_US", Category::Marketing, c);
        match v.finish() {
            Ok(()) => Vec::new(),
            Err(p) => p
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect(),
        }
    }

    #[test]
    fn a_good_template_passes_and_lists_its_variables() {
        let mut c = comps("Hi {{1}}, your order {{2}} shipped.", &["Ana", "#1042"]);
        c.header = Some(Header::Text {
            text: "Order {{1}}".into(),
            example: Some("#1042".into()),
        });
        c.buttons = vec![
            Button::Url {
                text: "Track".into(),
                url: "https://shop.example/t/{{1}}".into(),
                example: Some("abc".into()),
            },
            Button::QuickReply {
                text: "Stop".into(),
            },
        ];
        assert!(errors(TemplateKind::Whatsapp, "order_update", &c).is_empty());
        let vars = variables_of(&c);
        assert_eq!(
            vars.keys(),
            vec!["header.1", "body.1", "body.2", "button.0"]
        );
    }

    #[test]
    fn what_meta_rejects_is_caught_with_its_field() {
        let e = errors(
            TemplateKind::Whatsapp,
            "Order Update",
            &comps("Hi {{1}} and {{3}}.", &["a"]),
        );
        assert!(e.iter().any(|x| x.starts_with("name:")), "{e:?}");
        assert!(e.iter().any(|x| x.contains("{{2}} is missing")), "{e:?}");
        assert!(
            e.iter().any(|x| x.starts_with("components.body.examples:")),
            "{e:?}"
        );
        let e = errors(TemplateKind::Whatsapp, "x", &comps("{{1}} is here", &["a"]));
        assert!(
            e.iter().any(|x| x.contains("cannot start with a variable")),
            "{e:?}"
        );
        let e = errors(
            TemplateKind::Whatsapp,
            "x",
            &comps("Hi {{name}} {{1}} ok", &["a", "b"]),
        );
        assert!(e.iter().any(|x| x.contains("mixes")), "{e:?}");
        let e = errors(TemplateKind::Whatsapp, "x", &comps(&"a".repeat(1025), &[]));
        assert!(e.iter().any(|x| x.contains("at most 1024")), "{e:?}");
        let mut c = comps("Hello", &[]);
        c.buttons = vec![
            Button::QuickReply { text: "A".into() },
            Button::Url {
                text: "Go".into(),
                url: "https://x.example/{{1}}/y".into(),
                example: None,
            },
            Button::QuickReply {
                text: "a very long quick reply text".into(),
            },
        ];
        let e = errors(TemplateKind::Whatsapp, "x", &c);
        assert!(
            e.iter()
                .any(|x| x.starts_with("components.buttons[1].url:")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|x| x.starts_with("components.buttons[1].example:")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|x| x.starts_with("components.buttons[2].text:")),
            "{e:?}"
        );
        assert!(e.iter().any(|x| x.contains("next to each other")), "{e:?}");
        let e = errors(TemplateKind::Whatsapp, "x", &comps("Hi {{ 1", &[]));
        assert!(e.iter().any(|x| x.contains("without a closing")), "{e:?}");
    }

    #[test]
    fn rendering_uses_contact_data_then_fallbacks_and_reports_missing_values() {
        let c = comps("Hi {{1}}, code {{2}} at {{3}}.", &["Ana", "X1", "Acme"]);
        let vars = variables_of(&c);
        let mut m = Mapping::new();
        m.insert(
            "body.1".into(),
            VarSource {
                source: "contact.first_name".into(),
                value: None,
                fallback: Some("there".into()),
            },
        );
        m.insert(
            "body.2".into(),
            VarSource {
                source: "fixed".into(),
                value: Some("SALE10".into()),
                fallback: None,
            },
        );
        m.insert(
            "body.3".into(),
            VarSource {
                source: "contact.company".into(),
                value: None,
                fallback: None,
            },
        );
        let contact = SendContact {
            id: wamage_contacts::ContactId::new(),
            name: "Bea Lima".into(),
            company: None,
            language: None,
            email: None,
            phone: None,
            attributes: json!({}),
            blocked: false,
            consent: None,
            address: None,
        };
        let (values, missing) = resolve(&c, &vars, &m, Some(&contact)).unwrap_err();
        assert_eq!(missing, vec!["body.3"]);
        assert_eq!(
            fill(&c.body.text, "body", &values),
            "Hi Bea, code SALE10 at {{3}}."
        );
        // Without a contact the samples stand in.
        let values = resolve(&c, &vars, &m, None).unwrap();
        assert_eq!(
            fill(&c.body.text, "body", &values),
            "Hi Ana, code SALE10 at Acme."
        );
        assert_eq!(required_fields(&vars, &m), vec![VarField::Company]);
    }

    #[test]
    fn meta_shapes_round_trip() {
        let mut c = comps("Hi {{1}}, see {{2}}.", &["Ana", "this"]);
        c.footer = Some("Reply STOP to opt out".into());
        c.buttons = vec![Button::Url {
            text: "Open".into(),
            url: "https://x.example/{{1}}".into(),
            example: Some("q".into()),
        }];
        let vars = variables_of(&c);
        let body = meta_body("promo", "en", Category::Marketing, &c, &vars);
        assert_eq!(
            body["components"][0]["example"]["body_text"],
            json!([["Ana", "this"]])
        );
        assert_eq!(
            body["components"][2]["buttons"][0]["example"],
            json!(["https://x.example/q"])
        );
        assert_eq!(from_meta(&body), c);
        let OutboundContent::Template(t) = outbound(
            TemplateKind::Whatsapp,
            "promo",
            "en",
            &c,
            &vars,
            &HashMap::from([
                ("body.1".into(), "Bea".into()),
                ("body.2".into(), "now".into()),
                ("button.0".into(), "z".into()),
            ]),
        ) else {
            panic!("a template message")
        };
        assert_eq!(t.body.len(), 2);
        assert_eq!(t.buttons[0].value, "z");
    }
}
