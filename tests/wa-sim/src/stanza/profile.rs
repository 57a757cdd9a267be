//! Profile lookups: pictures (`w:profile:picture`) and business profiles (`w:biz`).

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};

use crate::node::{self, iq_error, iq_result, text};
use crate::world::{Account, Business, Picture, World};

/// Answers a profile-picture query. Hidden or missing pictures are the 401/404 IQ
/// errors the client turns into `Ok(None)`.
pub fn picture(req: &Node, world: &World, viewer: Option<&Account>) -> Node {
    let Some(target) = node::jid_attr(req, "target") else {
        return iq_error(req, 400, "bad-request");
    };
    let preview = req.get_optional_child("picture").and_then(|p| node::attr(p, "type")).is_none_or(|t| t == "preview");
    let found: Result<&Picture, (u16, &str)> = if target.server == wacore_binary::Server::Group {
        match world.group(&target.user) {
            Some(g) if viewer.is_none_or(|v| !g.has_member(v)) => Err((401, "not-authorized")),
            Some(g) => g.picture.as_ref().ok_or((404, "item-not-found")),
            None => Err((404, "item-not-found")),
        }
    } else {
        match world.account_by_jid(&target) {
            Some(a) if a.privacy.hide_picture && viewer.is_none_or(|v| v.phone != a.phone) => {
                Err((401, "not-authorized"))
            }
            Some(a) => a.picture.as_ref().ok_or((404, "item-not-found")),
            None => Err((404, "item-not-found")),
        }
    };
    match found {
        Err((code, why)) => iq_error(req, code, why),
        Ok(p) => {
            let url = if preview { &p.preview_url } else { &p.url };
            let picture = NodeBuilder::new("picture")
                .attr("id", p.id.as_str())
                .attr("type", if preview { "preview" } else { "image" })
                .attr("url", url.as_str())
                .attr("direct_path", direct_path(url))
                .build();
            iq_result(req, vec![picture])
        }
    }
}

/// The path part of a CDN URL (what WhatsApp calls the direct path).
fn direct_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
}

/// Answers a business-profile query; non-business accounts get an empty answer.
pub fn business(req: &Node, world: &World) -> Node {
    let jid = req
        .get_optional_child("business_profile")
        .and_then(|b| b.get_optional_child("profile"))
        .and_then(|p| node::jid_attr(p, "jid"));
    let profile = jid.as_ref().and_then(|jid| {
        let account = world.account_by_jid(jid)?;
        Some(profile_node(jid, account.business.as_ref()?))
    });
    iq_result(req, vec![NodeBuilder::new("business_profile").attr("v", "244").children(profile).build()])
}

fn profile_node(jid: &Jid, b: &Business) -> Node {
    let mut parts = vec![text("description", &b.description)];
    parts.extend(b.address.as_deref().map(|a| text("address", a)));
    parts.extend(b.email.as_deref().map(|e| text("email", e)));
    parts.extend(b.websites.iter().map(|w| text("website", w)));
    if !b.categories.is_empty() {
        let cats = b
            .categories
            .iter()
            .map(|c| NodeBuilder::new("category").attr("id", c.id.as_str()).bytes(c.name.as_bytes().to_vec()).build());
        parts.push(NodeBuilder::new("categories").children(cats).build());
    }
    if let Some(h) = &b.hours {
        let days = h.days.iter().map(|d| {
            let mut n = NodeBuilder::new("business_hours_config")
                .attr("day_of_week", d.day.as_str())
                .attr("mode", d.mode.as_str());
            if let Some(open) = d.open {
                n = n.attr("open_time", open.to_string());
            }
            if let Some(close) = d.close {
                n = n.attr("close_time", close.to_string());
            }
            n.build()
        });
        parts.push(NodeBuilder::new("business_hours").attr("timezone", h.timezone.as_str()).children(days).build());
    }
    NodeBuilder::new("profile").attr("jid", jid.clone()).children(parts).build()
}

#[cfg(test)]
mod tests {
    use super::direct_path;

    #[test]
    fn direct_path_is_the_url_path() {
        assert_eq!(direct_path("https://pps.whatsapp.net/v/t61/a.jpg?oh=1"), "/v/t61/a.jpg?oh=1");
        assert_eq!(direct_path("https://host"), "/");
    }
}
