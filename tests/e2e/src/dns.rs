//! A DNS server of the test's own on loopback UDP, for components' outbound calls by name
//! (the gateway's test-only `dns_server` setting points at it): it answers A and AAAA
//! questions from a script and counts them. Answers have TTL 0, so nothing may cache them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// The record type of a question: A (IPv4) or AAAA (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Question {
    /// An IPv4 address.
    A,
    /// An IPv6 address.
    Aaaa,
}

/// Says how to answer the `n`th question (from 1) of its kind for a name: with these
/// addresses (those of the question's family are sent; none is an empty answer), or `None`
/// for no answer at all.
pub type Script = dyn Fn(&str, Question, usize) -> Option<Vec<IpAddr>> + Send + Sync;

/// A running DNS server. Stops with the test's runtime.
pub struct DnsServer {
    address: SocketAddr,
    asked: Arc<Mutex<HashMap<(String, Question), usize>>>,
}

impl DnsServer {
    /// Starts a server on a loopback port answering by `script`.
    pub async fn start(script: impl Fn(&str, Question, usize) -> Option<Vec<IpAddr>> + Send + Sync + 'static) -> Self {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("a loopback UDP port");
        let address = socket.local_addr().expect("a bound port");
        let asked: Arc<Mutex<HashMap<(String, Question), usize>>> = Arc::default();
        let counts = asked.clone();
        tokio::spawn(async move {
            let mut packet = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut packet).await {
                let Some((name, question, end)) = parse(&packet[..n]) else { continue };
                let nth = {
                    let mut counts = counts.lock().unwrap();
                    let count = counts.entry((name.clone(), question)).or_default();
                    *count += 1;
                    *count
                };
                if let Some(addresses) = script(&name, question, nth) {
                    let _ = socket.send_to(&answer(&packet[..end], question, &addresses), from).await;
                }
            }
        });
        DnsServer { address, asked }
    }

    /// The address to put in `dns_server`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// How many questions of this kind were asked for `name` so far.
    pub fn asked(&self, name: &str, question: Question) -> usize {
        self.asked.lock().unwrap().get(&(name.to_string(), question)).copied().unwrap_or(0)
    }
}

/// The name (lower case, no final dot) and type of a query's question, and where the question
/// ends; `None` for anything but one A or AAAA question.
fn parse(packet: &[u8]) -> Option<(String, Question, usize)> {
    if packet.len() < 12 || u16::from_be_bytes([packet[4], packet[5]]) != 1 {
        return None;
    }
    let (mut at, mut labels) = (12, Vec::new());
    loop {
        let len = usize::from(*packet.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(packet.get(at..at + len)?).to_lowercase());
        at += len;
    }
    let question = match u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]) {
        1 => Question::A,
        28 => Question::Aaaa,
        _ => return None,
    };
    Some((labels.join("."), question, at + 4))
}

/// The response to `query` (header and question) with the `addresses` of its family.
fn answer(query: &[u8], question: Question, addresses: &[IpAddr]) -> Vec<u8> {
    let records: Vec<Vec<u8>> = addresses
        .iter()
        .filter_map(|address| match (question, address) {
            (Question::A, IpAddr::V4(v4)) => Some(v4.octets().to_vec()),
            (Question::Aaaa, IpAddr::V6(v6)) => Some(v6.octets().to_vec()),
            _ => None,
        })
        .collect();
    let mut response = query.to_vec();
    // QR, the query's opcode and RD, AA and RA; NOERROR. One question, the answers, nothing else.
    let flags = 0x8000 | (u16::from_be_bytes([query[2], query[3]]) & 0x7900) | 0x0400 | 0x0080;
    response[2..4].copy_from_slice(&flags.to_be_bytes());
    response[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
    response[8..12].fill(0);
    let kind: u16 = if question == Question::A { 1 } else { 28 };
    for record in records {
        response.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        response.extend_from_slice(&kind.to_be_bytes());
        response.extend_from_slice(&1u16.to_be_bytes()); // IN
        response.extend_from_slice(&0u32.to_be_bytes()); // TTL 0
        response.extend_from_slice(&(record.len() as u16).to_be_bytes());
        response.extend_from_slice(&record);
    }
    response
}
