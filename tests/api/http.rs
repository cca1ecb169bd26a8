//! The HTTP surface: routes, methods, content types, body limits and malformed bodies, over a real
//! socket.

use crate::common;

use std::time::Duration;

use common::{CxRequest, fixture, spawn_app, spawn_with};
use cx_webhook::Config;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn health_is_ok_without_auth() {
    let app = spawn_app().await;
    let a = app.call(Method::GET, "/health", &[], vec![]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json(), serde_json::json!({"status": "ok"}));
    assert_eq!(a.headers["content-type"], "application/json");
    let a = app.call(Method::HEAD, "/health", &[], vec![]).await;
    assert_eq!(a.status, StatusCode::OK);
    let a = app.call(Method::POST, "/health", &[], vec![]).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.headers["allow"], "GET, HEAD");
}

#[tokio::test]
async fn unknown_path_is_a_json_404() {
    let app = spawn_app().await;
    for path in ["/", "/nope", "/healthz", "/webhooks"] {
        let a = app.call(Method::GET, path, &[], vec![]).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(a.error_code(), "not_found");
        assert!(
            a.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(path)
        );
    }
}

#[tokio::test]
async fn get_webhook_is_405_with_allow() {
    let app = spawn_app().await;
    let a = app.call(Method::GET, "/webhook", &[], vec![]).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.headers["allow"], "POST");
    assert_eq!(a.error_code(), "method_not_allowed");
}

#[tokio::test]
async fn configured_path_prefixes_serve_webhooks() {
    let mut config = Config::local();
    config.webhook_paths = vec!["/dialogflow".into()];
    let app = spawn_with(config, |_| {}).await;
    for path in ["/dialogflow", "/dialogflow/account"] {
        let a = app
            .call(
                Method::POST,
                path,
                &[("content-type", "application/json")],
                fixture("unknown-tag.json"),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
    }
    let a = app.call(Method::POST, "/webhook", &[], vec![]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let mut config = Config::local();
    config.max_body_bytes = 4096;
    let app = spawn_with(config, |_| {}).await;
    let mut body = br#"{"text":""#.to_vec();
    body.extend(std::iter::repeat_n(b'x', 5000));
    body.extend(br#""}"#);
    let a = app.post_webhook(body).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.error_code(), "body_too_large");
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4096")
    );
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413() {
    // No Content-Length: the limit must hold while streaming, too.
    let mut config = Config::local();
    config.max_body_bytes = 4096;
    let app = spawn_with(config, |_| {}).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..3 {
        let chunk = vec![b' '; 2000];
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(&chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains(r#""code":"body_too_large""#), "{text}");
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let app = spawn_app().await;
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
        let a = app
            .call(
                Method::POST,
                "/webhook",
                &headers,
                fixture("unknown-tag.json"),
            )
            .await;
        assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert_eq!(a.error_code(), "unsupported_media_type");
    }
    let a = app
        .call(
            Method::POST,
            "/webhook",
            &[("content-type", "application/json; charset=utf-8")],
            fixture("unknown-tag.json"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_and_wrong_bodies_are_400_with_a_reason() {
    let app = spawn_app().await;
    let cases: [(&[u8], &str, &str); 5] = [
        (
            b"{\"fulfillmentInfo\": ",
            "malformed_json",
            "not valid JSON",
        ),
        (b"", "malformed_json", "empty"),
        (b"[1, 2, 3]", "not_an_object", "JSON object"),
        (b"\"hello\"", "not_an_object", "JSON object"),
        (
            br#"{"fulfillmentInfo": "weather"}"#,
            "invalid_request",
            "field `fulfillmentInfo`",
        ),
    ];
    for (body, code, says) in cases {
        let a = app.post_webhook(body.to_vec()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(a.error_code(), code, "{body:?}");
        let message = a.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(says), "{message}");
    }
}

#[tokio::test]
async fn slow_body_gets_408_not_a_hang() {
    let mut config = Config::local();
    config.body_read_timeout = Duration::from_millis(300);
    let app = spawn_with(config, |_| {}).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                content-length: 100\r\n\r\n{\"text\":";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut out))
        .await
        .expect("the server answers instead of waiting forever")
        .unwrap();
    let text = String::from_utf8_lossy(&out[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    let app = spawn_app().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let req = http::Request::post(app.url("/webhook"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(fixture("unknown-tag.json"))))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["fulfillmentResponse"]["messages"][0]["text"]["text"][0].is_string());
}

/// The proto3 JSON mapping's other spellings of a request: `key` in snake_case (the proto field
/// name), at every depth.
fn snake_case_keys(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let mut snake = String::new();
                    for c in k.chars() {
                        if c.is_ascii_uppercase() {
                            snake.push('_');
                        }
                        snake.push(c.to_ascii_lowercase());
                    }
                    (snake, snake_case_keys(v))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(snake_case_keys).collect()),
        other => other,
    }
}

#[tokio::test]
async fn proto_field_names_nulls_and_unknown_fields_get_the_same_answer() {
    let app = spawn_app().await;
    let camel = CxRequest::fixture("booking-validate-bad-date.json").json();
    let mut snake = snake_case_keys(camel.clone());
    assert!(snake.get("page_info").is_some() && snake.get("pageInfo").is_none());
    // null for every field it can stand for (its default), and fields this service never heard of.
    for (key, value) in [
        ("intent_info", serde_json::Value::Null),
        ("language_info", serde_json::Value::Null),
        ("messages", serde_json::Value::Null),
        ("payload", serde_json::Value::Null),
        ("trigger_event", serde_json::Value::Null),
        (
            "sentiment_analysis_result",
            serde_json::json!({"score": null, "magnitude": null}),
        ),
        (
            "tool_call_result",
            serde_json::json!({"tool": "x", "output_parameters": {}}),
        ),
    ] {
        snake[key] = value;
    }
    let form = snake["page_info"]["form_info"]["parameter_info"]
        .as_array_mut()
        .unwrap();
    for info in form.iter_mut() {
        for key in ["value", "just_collected"] {
            if info.get(key).is_none() {
                info[key] = serde_json::Value::Null;
            }
        }
        info["future_field"] = serde_json::json!([1, 2]);
    }

    let expected = app.post_webhook(serde_json::to_vec(&camel).unwrap()).await;
    let answer = app.post_webhook(serde_json::to_vec(&snake).unwrap()).await;
    assert_eq!(expected.status, StatusCode::OK);
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let answer = answer.json();
    assert_eq!(answer, expected.json());
    // The answer stays lowerCamelCase, and says what is wrong with the date.
    let form = &answer["pageInfo"]["formInfo"]["parameterInfo"];
    assert!(form.as_array().is_some_and(|f| !f.is_empty()), "{answer}");
    assert!(answer.get("page_info").is_none());
}
