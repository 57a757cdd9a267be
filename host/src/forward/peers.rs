//! The forwarding node's side of the channel: one HTTP/2 connection to each node it forwards
//! to, opened on first use and again whenever it failed, every call a stream on it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::Full;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::wire::{Call, DEADLINE_HEADER, NOT_HERE, PATH_PREFIX};
use crate::body::read_body;

/// How long connecting to another node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest answer read from another node (a device's groups with their participants).
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Why a call did not get the owner's answer.
#[derive(Debug, thiserror::Error)]
pub enum Failed {
    /// The node asked does not run the device (any more).
    #[error("the node does not run the device")]
    NotHere,
    /// The node could not be reached: the call never left.
    #[error("{0}")]
    Unreachable(String),
    /// The connection failed once the call had left: the node may have made it.
    #[error("{0}")]
    Lost(String),
    /// The node refused the call itself: another secret, or a call it does not know.
    #[error("{0}")]
    Refused(String),
    /// The call's deadline passed first.
    #[error("the deadline passed")]
    TimedOut,
}

/// The connections to the other nodes, by address.
pub struct Peers {
    /// `Authorization: Bearer …` with the cluster's secret.
    authorization: header::HeaderValue,
    connections: Mutex<HashMap<String, SendRequest<Full<Bytes>>>>,
}

impl Peers {
    /// No connection yet; calls authenticate with `secret`.
    pub fn new(secret: &str) -> Peers {
        let mut authorization =
            header::HeaderValue::try_from(format!("Bearer {secret}")).expect("the secret is a header value");
        authorization.set_sensitive(true);
        Peers { authorization, connections: Mutex::default() }
    }

    /// Makes `call` on `device` of `tenant` at the node at `address`, before `deadline`: the
    /// owner's encoded answer. A connection that closed before the call left it (the other
    /// node ended it idle) is replaced, and the call sent on the new one.
    pub async fn call(
        &self,
        address: &str,
        (tenant, device): (&str, &str),
        call: &Call,
        deadline: Instant,
    ) -> Result<Bytes, Failed> {
        let made = async {
            let body = Bytes::from(serde_json::to_vec(call).expect("a call encodes"));
            let request = |left: Duration| {
                Request::builder()
                    .method(Method::POST)
                    .uri(format!("http://{address}{PATH_PREFIX}{tenant}/{device}"))
                    .header(header::AUTHORIZATION, self.authorization.clone())
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(DEADLINE_HEADER, left.as_millis().to_string())
                    .body(Full::new(body.clone()))
                    .map_err(|e| Failed::Unreachable(format!("calling node {address}: {e}")))
            };
            let mut sender = self.connection(address).await?;
            let left = || deadline.saturating_duration_since(Instant::now());
            let response = match sender.try_send_request(request(left())?).await {
                Ok(response) => response,
                Err(failed) if failed.message().is_some() => {
                    self.forget(address);
                    let mut sender = self.connection(address).await?;
                    sender.send_request(request(left())?).await.map_err(|e| self.lost(address, e))?
                }
                Err(failed) => return Err(self.lost(address, failed.into_error())),
            };
            let (parts, body) = response.into_parts();
            let body = read_body(body, MAX_ANSWER_BYTES)
                .await
                .map_err(|e| Failed::Lost(format!("reading node {address}'s answer: {e}")))?;
            let said = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            match parts.status {
                StatusCode::OK => Ok(body),
                StatusCode::MISDIRECTED_REQUEST if refusal_code(&body).as_deref() == Some(NOT_HERE) => {
                    Err(Failed::NotHere)
                }
                status if status.is_client_error() => {
                    Err(Failed::Refused(format!("node {address} refused the call ({status}): {}", said())))
                }
                status => Err(Failed::Lost(format!("node {address} answered {status}: {}", said()))),
            }
        };
        tokio::time::timeout_at(deadline.into(), made).await.unwrap_or(Err(Failed::TimedOut))
    }

    /// The open connection to `address`, or a new one.
    async fn connection(&self, address: &str) -> Result<SendRequest<Full<Bytes>>, Failed> {
        let open = self.connections.lock().expect("peers lock").get(address).cloned();
        if let Some(sender) = open.filter(|sender| !sender.is_closed()) {
            return Ok(sender);
        }
        let connecting = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address));
        let stream = match connecting.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(Failed::Unreachable(format!("connecting to node {address}: {e}"))),
            Err(_) => return Err(Failed::Unreachable(format!("connecting to node {address} timed out"))),
        };
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // A peer that vanished without a word is noticed within seconds, not at the
            // kernel's TCP timeout.
            .keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Failed::Unreachable(format!("speaking HTTP/2 to node {address}: {e}")))?;
        let peer = address.to_owned();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("the connection to node {peer} ended: {e}");
            }
        });
        let mut connections = self.connections.lock().expect("peers lock");
        // Those closed for good go: a node that left, or came back on another port.
        connections.retain(|_, open| !open.is_closed());
        connections.insert(address.to_owned(), sender.clone());
        Ok(sender)
    }

    /// The failure of a call that left on the connection to `address`, which is forgotten.
    fn lost(&self, address: &str, error: hyper::Error) -> Failed {
        self.forget(address);
        Failed::Lost(format!("calling node {address}: {error}"))
    }

    /// Forgets the connection to `address`: the next call opens a new one.
    fn forget(&self, address: &str) {
        self.connections.lock().expect("peers lock").remove(address);
    }
}

/// The code of a JSON error answer, `{"error": {"code": …}}`.
fn refusal_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value["error"]["code"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    //! Both sides of the channel over a real socket: a [`Listener`] answering on a session of
    //! its own, and [`Peers`] calling it.

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Weak};

    use async_trait::async_trait;
    use waedge_contract::types::{
        BusinessProfile, Contact, DeviceState, DeviceStatus, Error, Group, LidMapping, LidVerification, OnWhatsapp,
        ProfilePicture, SendOutcome, SentMessage, UserInfo, VerifiedLink,
    };
    use waedge_device::{DeviceSession, TextMessage, VerificationRequest};
    use waedge_jid::Jid;

    use super::*;
    use crate::config::Connections;
    use crate::forward::listener::{Listener, Locals};

    const SECRET: &str = "channel-test-secret-0123456789abcdef";

    /// A session that knows one LID mapping, answers a look-up after `delay`, and counts the
    /// sends it finished (each takes `delay` too).
    struct Phone {
        delay: Duration,
        runs_here: AtomicBool,
        sent: AtomicUsize,
    }

    fn refused<T>() -> Result<T, Error> {
        Err(Error::Forbidden("not asked in these tests".into()))
    }

    #[async_trait]
    impl DeviceSession for Phone {
        fn status(&self) -> DeviceStatus {
            DeviceStatus { id: "main".into(), state: DeviceState::Connected, jid: None, lid: None, push_name: None }
        }

        fn runs_here(&self) -> bool {
            self.runs_here.load(Ordering::SeqCst)
        }

        async fn user_info(&self, _: &[Jid]) -> Result<Vec<UserInfo>, Error> {
            refused()
        }

        async fn profile_picture(&self, _: &Jid, _: bool) -> Result<Option<ProfilePicture>, Error> {
            refused()
        }

        async fn business_profile(&self, _: &Jid) -> Result<Option<BusinessProfile>, Error> {
            refused()
        }

        async fn lid_mapping(&self, jid: &Jid) -> Result<Option<LidMapping>, Error> {
            tokio::time::sleep(self.delay).await;
            let mapping = LidMapping { lid: "123456789@lid".into(), phone_jid: "6281234567890@s.whatsapp.net".into() };
            Ok((jid.to_string() == mapping.lid).then_some(mapping))
        }

        async fn is_on_whatsapp(&self, _: &[Jid]) -> Result<Vec<OnWhatsapp>, Error> {
            refused()
        }

        async fn joined_groups(&self) -> Result<Vec<Group>, Error> {
            refused()
        }

        async fn group_info(&self, _: &Jid) -> Result<Group, Error> {
            refused()
        }

        async fn contact(&self, _: &Jid) -> Result<Option<Contact>, Error> {
            refused()
        }

        async fn send_text(&self, _: &TextMessage) -> Result<SendOutcome, Error> {
            tokio::time::sleep(self.delay).await;
            self.sent.fetch_add(1, Ordering::SeqCst);
            Ok(SendOutcome::KeyReused)
        }

        async fn sent_message(&self, _: &str) -> Result<Option<SentMessage>, Error> {
            refused()
        }

        async fn start_lid_verification(&self, _: &VerificationRequest) -> Result<LidVerification, Error> {
            refused()
        }

        async fn lid_verification(&self, _: &str) -> Result<Option<LidVerification>, Error> {
            refused()
        }

        async fn verified_link(&self, _: &Jid) -> Result<Option<VerifiedLink>, Error> {
            refused()
        }
    }

    /// A cluster listener on a free loopback port, closing connections idle for `idle`,
    /// answering on `phone` as device `main` of `acme`; its address.
    async fn listening(phone: &Arc<Phone>, idle: Duration) -> String {
        let locals: Arc<Locals> = Arc::default();
        let session: Arc<dyn DeviceSession> = phone.clone();
        locals.lock().unwrap().insert(("acme".into(), "main".into()), Arc::downgrade(&session) as Weak<_>);
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap().to_string();
        let connections = Connections { idle_timeout_ms: idle.as_millis() as u64, ..Connections::default() };
        let listener = Arc::new(Listener::new(SECRET, locals));
        tokio::spawn(async move {
            let _session = session;
            crate::server::serve(socket, listener, connections, std::future::pending()).await
        });
        address
    }

    fn phone(delay: Duration) -> Arc<Phone> {
        Arc::new(Phone { delay, runs_here: AtomicBool::new(true), sent: AtomicUsize::new(0) })
    }

    fn lookup() -> Call {
        Call::LidMapping { jid: "123456789@lid".into() }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn the_owner_answers_as_its_session_does_and_only_a_node_with_the_secret() {
        let phone = phone(Duration::ZERO);
        let address = listening(&phone, Duration::from_secs(60)).await;
        let answer = Peers::new(SECRET).call(&address, ("acme", "main"), &lookup(), soon()).await.unwrap();
        let answer: Result<Option<LidMapping>, Error> = serde_json::from_slice(&answer).unwrap();
        assert_eq!(answer.unwrap().unwrap().phone_jid, "6281234567890@s.whatsapp.net");

        let stranger = Peers::new("channel-test-secret-0123456789abcdeX");
        let refused = stranger.call(&address, ("acme", "main"), &lookup(), soon()).await;
        assert!(matches!(&refused, Err(Failed::Refused(reason)) if reason.contains("401")), "{refused:?}");

        // A device it does not run, or does not know: the caller asks again elsewhere.
        phone.runs_here.store(false, Ordering::SeqCst);
        let misdirected = Peers::new(SECRET).call(&address, ("acme", "main"), &lookup(), soon()).await;
        assert!(matches!(misdirected, Err(Failed::NotHere)), "{misdirected:?}");
        let unknown = Peers::new(SECRET).call(&address, ("acme", "other"), &lookup(), soon()).await;
        assert!(matches!(unknown, Err(Failed::NotHere)), "{unknown:?}");
    }

    #[tokio::test]
    async fn a_look_up_ends_at_its_deadline_and_a_send_runs_to_its_end() {
        let phone = phone(Duration::from_millis(400));
        let address = listening(&phone, Duration::from_secs(60)).await;
        let peers = Peers::new(SECRET);
        let deadline = Instant::now() + Duration::from_millis(100);
        let late = peers.call(&address, ("acme", "main"), &lookup(), deadline).await;
        // The owner gives up at the deadline it was sent, as the caller does: whichever says
        // so first, it is a timeout.
        let owner_gave_up = late.as_ref().is_ok_and(|answer| answer.as_ref() == br#"{"Err":"Timeout"}"#);
        assert!(matches!(late, Err(Failed::TimedOut)) || owner_gave_up, "{late:?}");

        let send = Call::SendText {
            to: "6281234567890@s.whatsapp.net".into(),
            text: "hi".into(),
            reply_to: None,
            idempotency_key: None,
        };
        let deadline = Instant::now() + Duration::from_millis(100);
        let late = peers.call(&address, ("acme", "main"), &send, deadline).await;
        assert!(matches!(late, Err(Failed::TimedOut)), "{late:?}");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(phone.sent.load(Ordering::SeqCst), 1, "the owner finished the send its caller gave up on");
    }

    #[tokio::test]
    async fn a_connection_the_owner_closed_idle_is_replaced_without_failing_a_call() {
        let phone = phone(Duration::ZERO);
        let address = listening(&phone, Duration::from_millis(100)).await;
        let peers = Peers::new(SECRET);
        for _ in 0..3 {
            let answer = peers.call(&address, ("acme", "main"), &lookup(), soon()).await;
            assert!(answer.is_ok(), "{answer:?}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}
