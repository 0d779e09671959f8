//! `ApiJson<T>`: a JSON body extractor whose rejections are problems that name the wrong field.
//!
//! axum's own `Json` answers plain text; ours answers 415 for a missing/wrong content type,
//! 400 `malformed_json` for bytes that are not JSON, 422 `validation_failed` with the field path
//! for a wrong type, a missing field or an unknown field, and 413 past the body limit.

use axum::{
    extract::{FromRequest, Request},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{StatusCode, header};
use serde::{Serialize, de::DeserializeOwned};

use crate::problem::Problem;

/// For `#[serde(default, deserialize_with = "double_option")]` on patch fields: `null` →
/// `Some(None)` (clear the value), absent → `None` (leave it as is).
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// JSON in (validated shape) and out.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// `value` as compact JSON text: what `Value::to_string` gives, without going through `fmt`
/// (which checks every piece written for UTF-8).
pub fn to_text(value: &serde_json::Value) -> String {
    // A `Value` always serializes: its map keys are strings.
    serde_json::to_string(value).unwrap_or_default()
}

/// Parses a JSON body into `T`, mapping every failure to a problem.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            use serde_json::error::Category;
            match inner.classify() {
                Category::Syntax | Category::Eof | Category::Io => Err(Problem::bad_request(
                    "malformed_json",
                    "The request body is not valid JSON",
                )
                .with_detail(inner.to_string())),
                Category::Data => {
                    let message = clean_serde_message(&inner.to_string());
                    Err(Problem::invalid_field(
                        field_of(&path, &message, ""),
                        message,
                    ))
                }
            }
        }
    }
}

/// Reads `value` into `T` as [`parse_json`] reads a body, naming a wrong field by its path
/// after `prefix` (`"messages[3]."` for an item of a list, `""` for a whole body).
pub fn from_value<T: DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, Problem> {
    from_deserializer(value, prefix)
}

/// [`from_value`] for any deserializer of JSON (a `&RawValue`, a map of them): `T` read from
/// it, a wrong field named by its path after `prefix`.
pub fn from_deserializer<'de, D, T>(de: D, prefix: &str) -> Result<T, Problem>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde_path_to_error::deserialize::<_, T>(de).map_err(|err| {
        let path = err.path().to_string();
        let message = clean_serde_message(&err.into_inner().to_string());
        Problem::invalid_field(field_of(&path, &message, prefix), message)
    })
}

/// The wrong field of a deserialization error: its path (`.` for the top level), the
/// missing field's name added when the message says one is missing, after `prefix`.
fn field_of(path: &str, message: &str, prefix: &str) -> String {
    let field = match (path, missing_field_name(message)) {
        (".", Some(f)) => f,
        (".", None) => {
            return match prefix.strip_suffix('.') {
                Some(p) if !p.is_empty() => p.to_owned(),
                _ => "body".to_owned(),
            };
        }
        (p, Some(f)) => format!("{p}.{f}"),
        (p, None) => p.to_owned(),
    };
    match prefix.strip_suffix('.') {
        // An index follows its list directly: `messages[0][1]`.
        Some(list) if field.starts_with('[') => format!("{list}{field}"),
        _ => format!("{prefix}{field}"),
    }
}

/// serde appends " at line X column Y"; people do not need it next to a field name.
fn clean_serde_message(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

fn missing_field_name(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("missing field `")?;
    rest.split('`').next().map(str::to_owned)
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !is_json(content_type) {
            return Err(Problem::unsupported_media_type("application/json"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "The request body is too large",
                )
            } else {
                Problem::bad_request("unreadable_body", "The request body could not be read")
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct In {
        email: String,
        age: u32,
    }

    #[test]
    fn a_value_names_the_field_after_its_prefix() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            template: In,
        }
        let p = from_value::<Outer>(
            serde_json::json!({"template": {"email": "a@b.c"}}),
            "messages[3].",
        )
        .unwrap_err();
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(p.errors[0].field, "messages[3].template.age");
        // serde reads a struct from a list too, field by field.
        let p = from_value::<Outer>(serde_json::json!([1]), "messages[0].").unwrap_err();
        assert_eq!(p.errors[0].field, "messages[0][0]");
        let p = from_value::<Outer>(serde_json::json!({}), "").unwrap_err();
        assert_eq!(p.errors[0].field, "template");
        let p = from_value::<Outer>(serde_json::json!("x"), "").unwrap_err();
        assert_eq!(p.errors[0].field, "body");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let p = parse_json::<In>(br#"{"email":"a@b.c","age":"x"}"#).unwrap_err();
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(p.errors[0].field, "age");
    }

    #[test]
    fn missing_field_names_the_field() {
        let p = parse_json::<In>(br#"{"age":3}"#).unwrap_err();
        assert_eq!(p.errors[0].field, "email");
        assert_eq!(p.errors[0].message, "missing field `email`");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let p = parse_json::<In>(br#"{"email":"a","age":1,"admin":true}"#).unwrap_err();
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(p.errors[0].message.contains("unknown field"));
        assert_eq!(p.errors[0].field, "admin");
    }

    #[test]
    fn garbage_is_malformed_json() {
        let p = parse_json::<In>(b"{nope").unwrap_err();
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
        assert_eq!(p.code, "malformed_json");
    }

    #[test]
    fn content_types() {
        assert!(is_json(Some("application/json; charset=utf-8")));
        assert!(is_json(Some("application/merge-patch+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(None));
    }
}
