//! The HTTP application: domain routers composed under `/api/v1`, the OpenAPI document and its
//! Swagger UI, the ops endpoints, the embedded web UI, the Socket.IO gateway, and the middleware
//! every request crosses: request id → trace span → metrics, problem rendering and security
//! headers (one middleware) → CORS → compression → [Socket.IO at `/socket.io`] → timeout →
//! panic catcher → routing → body limit. The middleware wraps the router as one service; only
//! what must know the matched route (the body limit, handlers' extensions, the route template
//! for the metrics) is a layer on the routes.
//!
//! The gateway sits inside the outer middleware (requests to it get an id, a span, metrics,
//! security headers, CORS) but outside the request timeout: a long-polling request is held open
//! up to the ping interval by design, and a websocket lives on after its upgrade response. The
//! 101 upgrade response has an empty body of known size, which the compression layer leaves
//! alone (tested in `crates/realtime/tests`).

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use axum::{
    Extension, Router,
    body::Body,
    extract::{MatchedPath, Request},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tower::{ServiceBuilder, util::Either};
use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::CompressionLayer,
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;
use wamage_identity::TrustForwardedFor;
use wamage_kernel::Problem;

use crate::{app::AppState, config::ServerRole, ops, web};

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Wamage API",
        description = "Self-hosted business messaging: shared inbox, campaigns, team chat and workflows.\n\n\
            Authenticate with `Authorization: Bearer <token>`, where the token is an access token from \
            `/api/v1/auth/login` or an API key (`wam_…`). Errors are RFC 9457 `application/problem+json` \
            bodies with a stable `code` and, for validation failures, `errors: [{field, message}]`.",
        license(name = "AGPL-3.0-or-later")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign up, sign in, tokens, password reset, invitations"),
        (name = "me", description = "Your profile, avatar, password and devices"),
        (name = "organization", description = "The organisation, its members and invitations"),
        (name = "teams", description = "Teams of agents"),
        (name = "api-keys", description = "Keys for programs that call the API"),
        (name = "contacts", description = "Contacts, their channel identities, custom attributes, tags, groups, consent and settings"),
        (name = "chat", description = "Team chat: channels, DMs, messages, threads, reactions, pins, read markers, attachments, search"),
        (name = "channels", description = "Connected WhatsApp numbers, Telegram bots and Sandbox channels"),
        (name = "webhooks", description = "Provider webhooks (signed by the provider, no bearer token)"),
        (name = "inbox", description = "Shared inbox: conversations, messages, sending, notes, canned responses, simulated customers"),
        (name = "templates", description = "Message templates: WhatsApp templates (checked, submitted for review, synced) and local templates, variable mapping, previews"),
        (name = "campaigns", description = "Campaigns: template broadcasts to audiences, launch and schedule, pause/resume/cancel, analytics, recipients, retargeting"),
        (name = "realtime", description = "Presence (live updates over Socket.IO at `/socket.io`)"),
        (name = "ops", description = "Health, readiness and metrics")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or wam_ API key")
                    .build(),
            ),
        );
    }
}

/// The API routes with their OpenAPI description (no middleware).
pub fn api(state: &AppState) -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(wamage_identity::routes(state.identity.clone()))
        .merge(wamage_contacts::routes(state.contacts.clone()))
        .merge(wamage_chat::routes(state.chat.clone()))
        .merge(wamage_channels::routes(state.channels.clone()))
        .merge(wamage_channels::webhook_routes(state.channels.clone()))
        .merge(wamage_inbox::routes(state.inbox.clone()))
        .merge(wamage_templates::routes(state.templates.clone()))
        .merge(wamage_campaigns::routes(state.campaigns.clone()))
        .merge(wamage_realtime::routes(state.realtime.clone()))
        .merge(ops::routes(state.clone()))
}

/// The OpenAPI document alone (for `wamage openapi` and the web app's generated types).
pub fn openapi_document(state: &AppState) -> utoipa::openapi::OpenApi {
    api(state).into_openapi()
}

/// The application for this process's roles: the API, its docs and the web UI with `api`, the
/// Socket.IO gateway with `realtime` (its background tasks start here), the ops endpoints always.
pub fn router(state: &AppState) -> Router {
    let cfg = &state.config;
    // Validated at start-up; an unreadable value here means the defaults (every role).
    let roles = cfg
        .roles()
        .unwrap_or_else(|_| vec![ServerRole::Api, ServerRole::Worker, ServerRole::Realtime]);
    let routes = if roles.contains(&ServerRole::Api) {
        let (api_router, openapi) = api(state).split_for_parts();
        api_router
            .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi))
            .fallback(web::serve)
    } else {
        let (ops_router, _) = OpenApiRouter::new()
            .merge(ops::routes(state.clone()))
            .split_for_parts();
        ops_router.fallback(|| async { not_found() })
    };
    // Route level: one layer (each `Router::layer` wraps every route in one more boxed service,
    // cloned for each request), with what handlers read from the request's extensions.
    let routes = routes.layer(
        ServiceBuilder::new()
            .map_request(note_route as fn(Request) -> Request)
            .layer(axum::extract::DefaultBodyLimit::max(cfg.max_body_bytes))
            .layer(Extension(state.identity.clone()))
            .layer(Extension(TrustForwardedFor(cfg.trust_forwarded_for))),
    );
    let inner = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(cfg.request_timeout_secs),
        ))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                Problem::internal("handler panicked").into_response()
            },
        ))
        .service(routes);
    // Plain responses on both sides of the Socket.IO layer (it has a body type of its own, and
    // wants its inner body's errors to be standard errors) and in both arms.
    let inner = ServiceBuilder::new()
        .map_response(IntoResponse::into_response as fn(_) -> Response)
        .service(inner);
    let inner = if roles.contains(&ServerRole::Realtime) {
        state.realtime.start();
        Either::Left(
            ServiceBuilder::new()
                .map_response(IntoResponse::into_response as fn(_) -> Response)
                .layer(state.realtime.layer())
                .service(inner),
        )
    } else {
        Either::Right(inner)
    };
    // Everything else wraps the router once, around routing: per request it is cloned as one
    // value, where layers on the router are cloned and boxed again at every level.
    let app = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let request_id = req
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(middleware::from_fn(edge))
        .option_layer(cors_layer(&cfg.cors_origins()))
        .layer(CompressionLayer::new())
        .service(inner);
    Router::new().fallback_service(app)
}

/// Where the router tells [`edge`] (which runs before routing) the route template a
/// request matched.
#[derive(Clone, Default)]
struct RouteSlot(Arc<OnceLock<MatchedPath>>);

/// Notes the matched route template in the request's [`RouteSlot`] (route level).
fn note_route(req: Request) -> Request {
    if let (Some(slot), Some(path)) = (
        req.extensions().get::<RouteSlot>(),
        req.extensions().get::<MatchedPath>(),
    ) {
        let _ = slot.0.set(path.clone());
    }
    req
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([REQUEST_ID.clone(), header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// Metrics, problem rendering and security headers, in one middleware (each `from_fn` layer
/// is one more boxed future and one more clone of everything inside it, per request).
async fn edge(mut req: Request, next: Next) -> Response {
    let start = std::time::Instant::now();
    let slot = RouteSlot::default();
    req.extensions_mut().insert(slot.clone());
    let method = method_label(req.method());
    let path = req.uri().path();
    let is_socket_io = path.starts_with("/socket.io/");
    let is_docs = path.starts_with("/api/docs");
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|id| id.header_value().clone());
    let res = next.run(req).await;
    let mut res = render_problem(res, request_id).await;
    add_security_headers(res.headers_mut(), is_docs);
    let route = match slot.0.get() {
        Some(p) => p.as_str(),
        None if is_socket_io => "socket.io",
        None if res.status() == StatusCode::NOT_FOUND => "unmatched",
        None => "web",
    };
    request_metrics(method, route, res.status()).record(start.elapsed());
    res
}

/// A request method as a metric label: the standard ones by name, any other as `OTHER` (the
/// labels stay bounded whatever clients send).
fn method_label(m: &Method) -> &'static str {
    [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ]
    .into_iter()
    .find(|name| *name == m.as_str())
    .unwrap_or("OTHER")
}

/// The counters and histogram of one route template and method, by status: registered once
/// (building owned labels and looking the key up for every request was ~2.5 % of the server's
/// CPU in a webhook burst).
struct RouteMetrics {
    method: &'static str,
    duration: metrics::Histogram,
    by_status: Vec<(u16, metrics::Counter)>,
}

/// The handles [`edge`] records one request with.
struct RequestMetrics {
    duration: metrics::Histogram,
    count: metrics::Counter,
}

impl RequestMetrics {
    fn record(self, took: Duration) {
        self.count.increment(1);
        self.duration.record(took.as_secs_f64());
    }
}

/// Requests and their latency per route template (never per raw path: bounded labels).
fn request_metrics(method: &'static str, route: &str, status: StatusCode) -> RequestMetrics {
    type Routes = std::sync::RwLock<std::collections::HashMap<String, Vec<RouteMetrics>>>;
    static ROUTES: OnceLock<Routes> = OnceLock::new();
    let routes = ROUTES.get_or_init(Routes::default);
    let status = status.as_u16();
    let found = |m: &RouteMetrics| {
        m.by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, count)| RequestMetrics {
                duration: m.duration.clone(),
                count: count.clone(),
            })
    };
    {
        let map = routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(handles) = map
            .get(route)
            .and_then(|ms| ms.iter().find(|m| m.method == method))
            .and_then(found)
        {
            return handles;
        }
    }
    let mut map = routes
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let ms = map.entry(route.to_owned()).or_default();
    let i = match ms.iter().position(|m| m.method == method) {
        Some(i) => i,
        None => {
            ms.push(RouteMetrics {
                method,
                duration: metrics::histogram!(
                    "wamage_http_request_duration_seconds",
                    "method" => method,
                    "route" => route.to_owned()
                ),
                by_status: Vec::new(),
            });
            ms.len() - 1
        }
    };
    let m = &mut ms[i];
    if let Some(handles) = found(m) {
        return handles;
    }
    let count = metrics::counter!(
        "wamage_http_requests_total",
        "method" => method,
        "route" => route.to_owned(),
        "status" => status.to_string()
    );
    m.by_status.push((status, count.clone()));
    RequestMetrics {
        duration: m.duration.clone(),
        count,
    }
}

/// Makes every error a problem+json body carrying the request id: problems raised by handlers
/// get the id added; plain-text rejections from the framework (bad path parameter, unknown
/// route, wrong method, timeout, oversized body) are wrapped into problems.
async fn render_problem(res: Response, request_id: Option<HeaderValue>) -> Response {
    let request_id = || {
        request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(problem) = res.extensions().get::<Problem>() {
        let mut out = problem.to_response(request_id());
        copy_extra_headers(res.headers(), &mut out);
        return out;
    }
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if is_json {
        return res;
    }
    let (code, title) = match status {
        StatusCode::BAD_REQUEST => ("bad_request", "Bad request"),
        StatusCode::NOT_FOUND => ("not_found", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "Method not allowed"),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "The request took too long"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "The request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "Unsupported media type"),
        StatusCode::UNPROCESSABLE_ENTITY => ("validation_failed", "The request has invalid fields"),
        s if s.is_server_error() => ("internal", "Internal error"),
        _ => ("error", "Request failed"),
    };
    let (parts, body) = res.into_parts();
    let detail = if status.is_client_error() {
        let body = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body).trim().to_owned();
        (!text.is_empty()).then_some(text)
    } else {
        None
    };
    let mut p = Problem::new(status, code, title);
    p.detail = detail;
    let mut out = p.to_response(request_id());
    copy_extra_headers(&parts.headers, &mut out);
    out
}

/// The headers of a response that its problem keeps: the methods a route allows (set on a 405
/// by the router) and the authentication challenge.
fn copy_extra_headers(from: &HeaderMap, to: &mut Response) {
    for name in [header::ALLOW, header::WWW_AUTHENTICATE] {
        if let Some(v) = from.get(&name) {
            to.headers_mut().insert(name, v.clone());
        }
    }
}

static CROSS_ORIGIN_OPENER_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-opener-policy");
static PERMISSIONS_POLICY: HeaderName = HeaderName::from_static("permissions-policy");

/// Security headers for every response, problems included. The CSP allows inline styles (the
/// component library sets style attributes) and nothing from other origins.
fn add_security_headers(h: &mut HeaderMap, is_docs: bool) {
    h.reserve(6);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    h.insert(
        CROSS_ORIGIN_OPENER_POLICY.clone(),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        PERMISSIONS_POLICY.clone(),
        HeaderValue::from_static("camera=(), geolocation=(), microphone=(self)"),
    );
    if !is_docs {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
                 style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self' ws: wss:; \
                 font-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'self'",
            ),
        );
    }
}

/// Reserved prefixes the web UI never answers for.
pub const RESERVED_PREFIXES: [&str; 6] = [
    "/api",
    "/metrics",
    "/health",
    "/ready",
    "/socket.io",
    "/webhooks",
];

/// 404 problem for unknown API paths.
pub fn not_found() -> Response {
    Problem::not_found("route").into_response()
}

/// Used by `web::serve` to build a response from embedded bytes.
pub fn bytes_response(content_type: &str, cache: &'static str, body: Vec<u8>) -> Response {
    let mut res = Response::new(Body::from(body));
    if let Ok(v) = HeaderValue::from_str(content_type) {
        res.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}
