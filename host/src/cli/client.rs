//! A blocking client for the admin API.

use std::io::{BufRead, BufReader};

use anyhow::{Context, bail};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::Connection;

/// The admin API of a running gateway.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: String,
}

/// One server-sent event: its name and its data parsed as JSON.
pub struct Event {
    /// The `event:` field.
    pub name: String,
    /// The `data:` field as JSON.
    pub data: Value,
}

impl Client {
    /// A client for the admin API `connection` names; fails without an admin token.
    pub fn new(connection: &Connection) -> anyhow::Result<Client> {
        let token = connection
            .admin_token
            .clone()
            .context("no admin token: set WAEDGE_ADMIN_TOKEN (`waedge admin-token create` makes one)")?;
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Ok(Client { agent, base: connection.admin_url.trim_end_matches('/').to_string(), token })
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.agent.get(self.url(path)).header("authorization", self.bearer()).call();
        self.answer("GET", path, response)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.agent.delete(self.url(path)).header("authorization", self.bearer()).call();
        self.answer("DELETE", path, response)
    }

    /// `POST path` with a JSON body (`Value::Null`: no body).
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self.agent.post(self.url(path)).header("authorization", self.bearer());
        let response = match body {
            Value::Null => request.send_empty(),
            body => request.header("content-type", "application/json").send(body.to_string()),
        };
        self.answer("POST", path, response)
    }

    /// `POST path` with raw bytes of `content_type`.
    pub fn post_bytes(&self, path: &str, content_type: &str, bytes: &[u8]) -> anyhow::Result<Value> {
        let request = self.agent.post(self.url(path)).header("authorization", self.bearer());
        let response = request.header("content-type", content_type).send(bytes);
        self.answer("POST", path, response)
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self.agent.put(self.url(path)).header("authorization", self.bearer());
        let response = request.header("content-type", "application/json").send(body.to_string());
        self.answer("PUT", path, response)
    }

    /// `PATCH path` with a JSON body.
    pub fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self.agent.patch(self.url(path)).header("authorization", self.bearer());
        let response = request.header("content-type", "application/json").send(body.to_string());
        self.answer("PATCH", path, response)
    }

    /// Follows the server-sent events of `GET path`, calling `on_event` for each until it
    /// returns `false` or the stream ends.
    pub fn events(&self, path: &str, mut on_event: impl FnMut(Event) -> anyhow::Result<bool>) -> anyhow::Result<()> {
        let response = self.agent.get(self.url(path)).header("authorization", self.bearer()).call();
        let response = response.map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            self.answer("GET", path, Ok(response))?;
            bail!("the admin API answered without an event stream");
        }
        let mut name = String::new();
        let mut data = String::new();
        for line in BufReader::new(response.into_body().into_reader()).lines() {
            let line = line.context("reading the event stream")?;
            if let Some(value) = line.strip_prefix("event: ") {
                name = value.to_string();
            } else if let Some(value) = line.strip_prefix("data: ") {
                data.push_str(value);
            } else if line.is_empty() && !data.is_empty() {
                let data = serde_json::from_str(&std::mem::take(&mut data)).context("an event that is not JSON")?;
                if !on_event(Event { name: std::mem::take(&mut name), data })? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn answer(
        &self,
        method: &str,
        path: &str,
        response: Result<http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Value> {
        let mut response = response.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let text = response.body_mut().read_to_string().context("reading the admin API's answer")?;
        let body: Value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            return Ok(body);
        }
        match body.pointer("/error/message").and_then(Value::as_str) {
            Some(message) => {
                let code = body.pointer("/error/code").and_then(Value::as_str).unwrap_or("ERROR");
                bail!("{method} {path}: {} {code}: {message}", status.as_u16())
            }
            None => bail!("{method} {path}: {status}: {body}"),
        }
    }

    fn unreachable(&self, error: ureq::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "cannot reach the admin API at {}: {error} (is `waedge serve` running? set WAEDGE_ADMIN_URL if it listens elsewhere)",
            self.base
        )
    }
}

/// The bytes a path segment keeps as they are: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `text` made safe for a URL path segment.
pub fn segment(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_escape_all_but_the_unreserved_characters() {
        assert_eq!(segment("acme-1_a.b~c"), "acme-1_a.b~c");
        assert_eq!(segment("a/b c?d#e%f"), "a%2Fb%20c%3Fd%23e%25f");
        assert_eq!(segment("café"), "caf%C3%A9");
    }
}
