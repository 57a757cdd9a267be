//! What travels between nodes: a device call and its answer, as JSON.
//!
//! The request is `POST /v1/devices/{tenant}/{device}` with the [`Call`] as its body, the
//! cluster's secret as its bearer token and the time the call has left in [`DEADLINE_HEADER`];
//! the answer is `200` with the call's `Result` as serde writes it (`{"Ok": …}` or
//! `{"Err": …}`, the contract's own types), so the forwarding node hands its caller exactly
//! what the owner's session answered. Any other status is the channel's own failure, with a
//! JSON error as the other listeners write it; [`NOT_HERE`] says the device is not run by
//! the node asked. A call on the device itself rather than its session ([`Manage`]: linking,
//! reconnecting, logging out, removing) answers `{"Ok": …}` or `{"Err": "why"}`.

use serde::{Deserialize, Serialize};
use waedge_contract::types::Error;
use waedge_device::{DeviceManager, DeviceSession, TextMessage, VerificationRequest};
use waedge_jid::Jid;

/// The path of a device's calls: `/v1/devices/{tenant}/{device}`.
pub const PATH_PREFIX: &str = "/v1/devices/";

/// The request header carrying how many milliseconds the call has left.
pub const DEADLINE_HEADER: &str = "waedge-deadline-ms";

/// The error code of an answer from a node that does not run the device (status 421).
pub const NOT_HERE: &str = "NOT_HERE";

/// A call on a device session that needs the node running its client. (What a session reads
/// from the store — sent messages, verifications, verified links — any node answers itself.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "kebab-case")]
pub enum Call {
    /// [`DeviceSession::user_info`].
    UserInfo {
        /// The users.
        jids: Vec<String>,
    },
    /// [`DeviceSession::profile_picture`].
    ProfilePicture {
        /// The user or group.
        jid: String,
        /// The thumbnail instead of the picture.
        preview: bool,
    },
    /// [`DeviceSession::business_profile`].
    BusinessProfile {
        /// The account.
        jid: String,
    },
    /// [`DeviceSession::lid_mapping`].
    LidMapping {
        /// The LID or phone JID.
        jid: String,
    },
    /// [`DeviceSession::is_on_whatsapp`].
    IsOnWhatsapp {
        /// The users.
        jids: Vec<String>,
    },
    /// [`DeviceSession::joined_groups`].
    JoinedGroups,
    /// [`DeviceSession::group_info`].
    GroupInfo {
        /// The group.
        jid: String,
    },
    /// [`DeviceSession::contact`].
    Contact {
        /// The contact.
        jid: String,
    },
    /// [`DeviceSession::send_text`].
    SendText {
        /// The recipient.
        to: String,
        /// The text.
        text: String,
        /// The message it answers.
        reply_to: Option<String>,
        /// The caller's key for sending it at most once.
        idempotency_key: Option<String>,
    },
    /// [`DeviceSession::start_lid_verification`].
    StartLidVerification {
        /// The phone JID the code goes to.
        phone_jid: String,
        /// The text, with the code's placeholder.
        text: String,
        /// How long the code is good for.
        ttl_seconds: u32,
    },
    /// A call on the device rather than its session, made on the owner's device manager.
    Manage(Manage),
}

/// A call on a device that needs the node running its client: the admin API's linking,
/// reconnecting, logging out and removal, made on another node than the owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "manage", rename_all = "kebab-case")]
pub enum Manage {
    /// [`DeviceManager::link_qr`]: answers where the linking stands.
    LinkQr,
    /// [`DeviceManager::link_pair_code`]: answers the code and where the linking stands.
    LinkPairCode {
        /// The account's number.
        phone_number: String,
    },
    /// [`DeviceManager::linking`]: where the last linking stands, if there was one.
    Linking,
    /// [`DeviceManager::cancel_link`].
    CancelLink,
    /// [`DeviceManager::reconnect`].
    Reconnect,
    /// [`DeviceManager::logout`].
    Logout,
    /// [`DeviceManager::remove`].
    Remove,
}

impl Manage {
    /// Whether the call changes the device (all but a look at the linking): it runs to its
    /// end on the owner once it arrived there, whatever its deadline and its caller.
    pub fn changes(&self) -> bool {
        *self != Manage::Linking
    }

    /// Makes the call on `devices` for `device` of `tenant` and encodes its answer, an error
    /// as its message. Linking by QR code a device being linked answers where that linking
    /// stands, as the admin API does on the node it was asked on.
    pub async fn answer(self, devices: &dyn DeviceManager, (tenant, device): (&str, &str)) -> Vec<u8> {
        fn said<T: Serialize>(answer: anyhow::Result<T>) -> Vec<u8> {
            json(answer.map_err(|e| format!("{e:#}")), |why| why)
        }
        match self {
            Manage::LinkQr => {
                let view = match devices.linking_now(tenant, device) {
                    Some(view) => Ok(view),
                    None => devices.link_qr(tenant, device).await,
                };
                said(view.map(|view| view.borrow().clone()))
            }
            Manage::LinkPairCode { phone_number } => {
                said(devices.link_pair_code(tenant, device, &phone_number).await.map(|(code, view)| {
                    let state = view.borrow().clone();
                    (code, state)
                }))
            }
            Manage::Linking => said(Ok(devices.linking(tenant, device).map(|view| view.borrow().clone()))),
            Manage::CancelLink => said(devices.cancel_link(tenant, device).await),
            Manage::Reconnect => said(devices.reconnect(tenant, device).await),
            Manage::Logout => said(devices.logout(tenant, device).await),
            Manage::Remove => said(devices.remove(tenant, device).await),
        }
    }
}

impl Call {
    /// Whether the call sends a message: it runs to its end once made, and the caller finds
    /// out how it went by its idempotency key.
    pub fn sends(&self) -> bool {
        matches!(self, Call::SendText { .. } | Call::StartLidVerification { .. })
    }

    /// The call sending `message`.
    pub fn send_text(message: &TextMessage) -> Call {
        Call::SendText {
            to: message.to.to_string(),
            text: message.text.clone(),
            reply_to: message.reply_to.clone(),
            idempotency_key: message.idempotency_key.clone(),
        }
    }

    /// The call starting `request`.
    pub fn start_lid_verification(request: &VerificationRequest) -> Call {
        Call::StartLidVerification {
            phone_jid: request.phone_jid.to_string(),
            text: request.text.clone(),
            ttl_seconds: request.ttl_seconds,
        }
    }

    /// Makes the call on `session` and encodes its answer. A JID that does not parse is the
    /// session's own `invalid-jid` answer (the forwarding node parsed it already). A
    /// [`Manage`] call is the device manager's ([`Manage::answer`]), not a session's.
    pub async fn answer(self, session: &dyn DeviceSession) -> Vec<u8> {
        match self {
            Call::Manage(_) => encode::<()>(Err(Error::Upstream("a call on a device is not a session's".into()))),
            Call::UserInfo { jids } => encode(async { session.user_info(&parse_all(&jids)?).await }.await),
            Call::ProfilePicture { jid, preview } => {
                encode(async { session.profile_picture(&parse(&jid)?, preview).await }.await)
            }
            Call::BusinessProfile { jid } => encode(async { session.business_profile(&parse(&jid)?).await }.await),
            Call::LidMapping { jid } => encode(async { session.lid_mapping(&parse(&jid)?).await }.await),
            Call::IsOnWhatsapp { jids } => encode(async { session.is_on_whatsapp(&parse_all(&jids)?).await }.await),
            Call::JoinedGroups => encode(session.joined_groups().await),
            Call::GroupInfo { jid } => encode(async { session.group_info(&parse(&jid)?).await }.await),
            Call::Contact { jid } => encode(async { session.contact(&parse(&jid)?).await }.await),
            Call::SendText { to, text, reply_to, idempotency_key } => encode(
                async {
                    let message = TextMessage { to: parse(&to)?, text, reply_to, idempotency_key };
                    session.send_text(&message).await
                }
                .await,
            ),
            Call::StartLidVerification { phone_jid, text, ttl_seconds } => encode(
                async {
                    let request = VerificationRequest { phone_jid: parse(&phone_jid)?, text, ttl_seconds };
                    session.start_lid_verification(&request).await
                }
                .await,
            ),
        }
    }
}

/// The answer of a [`Manage`] call that failed: `{"Err": why}`.
pub fn refused(why: &str) -> Vec<u8> {
    json::<(), _>(Err(why.to_owned()), |why| why)
}

/// The JSON of a session's answer.
pub fn encode<T: Serialize>(answer: Result<T, Error>) -> Vec<u8> {
    json(answer, Error::Upstream)
}

/// The JSON of `answer` (`{"Ok": …}` or `{"Err": …}`); an answer that does not encode is the
/// error `failed` makes of why.
fn json<T: Serialize, E: Serialize>(answer: Result<T, E>, failed: impl FnOnce(String) -> E) -> Vec<u8> {
    serde_json::to_vec(&answer).unwrap_or_else(|e| {
        let failed = Err::<(), E>(failed(format!("encoding the answer failed: {e}")));
        serde_json::to_vec(&failed).expect("an error encodes")
    })
}

fn parse(jid: &str) -> Result<Jid, Error> {
    Jid::parse(jid).map_err(|e| Error::InvalidJid(format!("{jid}: {e}")))
}

fn parse_all(jids: &[String]) -> Result<Vec<Jid>, Error> {
    jids.iter().map(|jid| parse(jid)).collect()
}

/// The JIDs as text.
pub fn texts(jids: &[Jid]) -> Vec<String> {
    jids.iter().map(Jid::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_reads_back_as_written_and_says_which_call_it_is() {
        let call = Call::ProfilePicture { jid: "6281234567890@s.whatsapp.net".into(), preview: true };
        let json = serde_json::to_value(&call).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"call": "profile-picture", "jid": "6281234567890@s.whatsapp.net", "preview": true})
        );
        assert_eq!(serde_json::from_value::<Call>(json).unwrap(), call);
        let joined = serde_json::to_value(Call::JoinedGroups).unwrap();
        assert_eq!(joined, serde_json::json!({"call": "joined-groups"}));
        assert!(serde_json::from_str::<Call>(r#"{"call": "delete-everything"}"#).is_err());
        let pair = Call::Manage(Manage::LinkPairCode { phone_number: "6281234567890".into() });
        let json = serde_json::to_value(&pair).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"call": "manage", "manage": "link-pair-code", "phone_number": "6281234567890"})
        );
        assert_eq!(serde_json::from_value::<Call>(json).unwrap(), pair);
        let remove = serde_json::json!({"call": "manage", "manage": "remove"});
        assert_eq!(serde_json::from_value::<Call>(remove).unwrap(), Call::Manage(Manage::Remove));
    }

    #[test]
    fn an_answer_is_the_result_of_the_contract_types() {
        let answer: Result<Vec<String>, Error> =
            Err(Error::DeviceNotConnected(waedge_contract::types::DeviceState::Connecting));
        let decoded: Result<Vec<String>, Error> = serde_json::from_slice(&encode(answer.clone())).unwrap();
        assert_eq!(decoded, answer);
    }

    #[test]
    fn an_answer_that_does_not_encode_is_an_error_saying_so() {
        // JSON has no map keys but strings.
        let unencodable = std::collections::BTreeMap::from([((1, 2), 3)]);
        let decoded: Result<(), Error> = serde_json::from_slice(&encode(Ok(unencodable.clone()))).unwrap();
        assert!(matches!(decoded, Err(Error::Upstream(ref why)) if why.starts_with("encoding the answer failed")));
        let refused: Result<(), String> = serde_json::from_slice(&refused("the device is gone")).unwrap();
        assert_eq!(refused, Err("the device is gone".to_owned()));
        let said: Result<(), String> = serde_json::from_slice(&json(Ok(unencodable), |why| why)).unwrap();
        assert!(said.is_err_and(|why| why.starts_with("encoding the answer failed")));
    }
}
