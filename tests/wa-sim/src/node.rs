//! Small helpers for reading and building binary XML nodes.

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeContent};

/// The server's own address as the client expects it in `from` attributes.
pub const SERVER: &str = "s.whatsapp.net";

/// An attribute as text (JID-valued attributes are rendered).
pub fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(|v| v.as_str().into_owned())
}

/// A JID-valued attribute.
pub fn jid_attr(node: &Node, key: &str) -> Option<Jid> {
    node.attrs.get(key).and_then(|v| v.to_jid())
}

/// The children of a node (empty when it has none).
pub fn children(node: &Node) -> &[Node] {
    node.children().unwrap_or(&[])
}

/// A node's content as bytes (string content is returned as its UTF-8 bytes).
pub fn content_bytes(node: &Node) -> Option<&[u8]> {
    match node.content.as_ref()? {
        NodeContent::Bytes(b) => Some(b),
        NodeContent::String(s) => Some(s.as_bytes()),
        NodeContent::Nodes(_) => None,
    }
}

/// The first child with this tag, as bytes content.
pub fn child_bytes<'a>(node: &'a Node, tag: &str) -> Option<&'a [u8]> {
    node.get_optional_child(tag).and_then(content_bytes)
}

/// A node carrying free text. Text is sent as bytes: the codec would turn any string
/// containing '@' into a JID, which the client then fails to decode.
pub fn text(tag: &'static str, value: &str) -> Node {
    NodeBuilder::new(tag).bytes(value.as_bytes().to_vec()).build()
}

/// `<iq type="result" id=…>` answering `req`, with the given children.
pub fn iq_result(req: &Node, children: Vec<Node>) -> Node {
    let mut b = NodeBuilder::new("iq")
        .attr("type", "result")
        .attr("from", attr(req, "to").unwrap_or_else(|| SERVER.to_owned()))
        .attr("id", attr(req, "id").unwrap_or_default());
    if !children.is_empty() {
        b = b.children(children);
    }
    b.build()
}

/// `<iq type="error" id=…><error code text/></iq>` answering `req`.
pub fn iq_error(req: &Node, code: u16, text: &str) -> Node {
    NodeBuilder::new("iq")
        .attr("type", "error")
        .attr("from", attr(req, "to").unwrap_or_else(|| SERVER.to_owned()))
        .attr("id", attr(req, "id").unwrap_or_default())
        .children([NodeBuilder::new("error").attr("code", code.to_string()).attr("text", text).build()])
        .build()
}

/// A per-field `<error code text/>` child used inside usync and picture answers.
pub fn error_child(code: u16, text: &str) -> Node {
    NodeBuilder::new("error").attr("code", code.to_string()).attr("text", text).build()
}

/// A fresh random stanza id.
pub fn random_id() -> String {
    let bytes: [u8; 8] = rand::random();
    hex::encode_upper(bytes)
}

/// Current unix time in seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
