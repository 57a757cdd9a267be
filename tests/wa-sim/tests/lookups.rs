//! Lookups answered from the demo world, through the real client's public API.

mod common;

use common::{SELF_LID, SELF_PHONE, TestClient, start_sim};
use whatsapp_rust::Jid;

async fn connected_self(sim: &wa_sim::WaSim) -> TestClient {
    let c = TestClient::seeded(sim, SELF_PHONE, SELF_LID, 5, "Sim User").await;
    c.connected(10).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_info_reflects_the_fixture_and_privacy() {
    let sim = start_sim().await;
    let c = connected_self(&sim).await;
    let alice = Jid::pn("15550002222");
    let bob = Jid::pn("15550003333");
    let acme = Jid::pn("15550004444");
    let info = c.client.contacts().get_user_info(&[alice.clone(), bob.clone(), acme.clone()]).await.unwrap();

    let a = &info[&alice];
    assert_eq!(a.status.as_deref(), Some("Hey there! I am using WhatsApp."));
    assert_eq!(a.picture_id.as_deref(), Some("1700000222"));
    assert_eq!(a.devices, vec![0, 3, 7]);
    assert_eq!(a.lid.as_ref().map(|l| l.user.to_string()).as_deref(), Some("100000000000002"));
    assert!(!a.is_business);

    let b = &info[&bob];
    assert_eq!(b.status, None);
    assert!(b.status_error.is_some(), "hidden about must be a per-field error");
    assert_eq!(b.picture_id, None);
    assert!(b.picture_error.is_some(), "hidden picture must be a per-field error");
    assert!(b.devices.is_empty() && b.devices_error.is_some());
    assert_eq!(b.lid.as_ref().map(|l| l.user.to_string()).as_deref(), Some("100000000000003"));

    let z = &info[&acme];
    assert!(z.is_business);
    assert_eq!(z.verified_name.as_ref().and_then(|v| v.name.clone()).as_deref(), Some("Acme Store"));

    let carol = Jid::pn("15550005555");
    let info = c.client.contacts().get_user_info(std::slice::from_ref(&carol)).await.unwrap();
    assert_eq!(info[&carol].lid, None, "a LID-only account keeps the LID of its number to itself");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_pictures_full_preview_and_hidden() {
    let sim = start_sim().await;
    let c = connected_self(&sim).await;
    let alice = Jid::pn("15550002222");
    let full = c.client.contacts().get_profile_picture(&alice, false).await.unwrap().expect("full picture");
    assert_eq!(full.id, "1700000222");
    assert_eq!(full.url, "https://pps.whatsapp.net/v/t61/alice-full.jpg?oh=1");
    let preview = c.client.contacts().get_profile_picture(&alice, true).await.unwrap().expect("preview");
    assert_eq!(preview.url, "https://pps.whatsapp.net/v/t61/alice-preview.jpg?oh=1");
    assert!(c.client.contacts().get_profile_picture(&Jid::pn("15550003333"), true).await.unwrap().is_none());
    assert!(c.client.contacts().get_profile_picture(&Jid::pn("15550009999"), true).await.unwrap().is_none());
    let group = c.client.contacts().get_profile_picture(&Jid::group("120363000000000001"), false).await.unwrap();
    assert_eq!(group.expect("group picture").url, "https://pps.whatsapp.net/v/t61/team-full.jpg");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_profile() {
    let sim = start_sim().await;
    let c = connected_self(&sim).await;
    let p = c.client.get_business_profile(&Jid::pn("15550004444")).await.unwrap().expect("business profile");
    assert_eq!(p.description, "Everything for the road runner.");
    assert_eq!(p.email.as_deref(), Some("hello@acme.example"));
    assert_eq!(p.website, vec!["https://acme.example", "https://shop.acme.example"]);
    assert_eq!(p.address.as_deref(), Some("1 Desert Road, Mesa"));
    assert_eq!(p.categories.len(), 1);
    assert_eq!(p.categories[0].name, "Shopping & retail");
    assert_eq!(p.business_hours.timezone.as_deref(), Some("America/Phoenix"));
    let days = p.business_hours.business_config.expect("hours");
    assert_eq!(days.len(), 3);
    assert_eq!((days[0].open_time, days[0].close_time), (Some(480), Some(1080)));
    assert!(c.client.get_business_profile(&Jid::pn("15550002222")).await.unwrap().is_none());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_participating_and_metadata() {
    let sim = start_sim().await;
    let c = connected_self(&sim).await;
    let groups = c.client.groups().get_participating().await.unwrap();
    assert_eq!(groups.len(), 2, "self is in two of the three demo groups");

    let team = &groups[&Jid::group("120363000000000001")];
    assert_eq!(team.subject, "Sim Team");
    assert_eq!(team.description.as_deref(), Some("Where the simulated people meet."));
    assert!(team.is_announcement && team.is_locked && team.membership_approval);
    assert_eq!(team.ephemeral.as_ref().and_then(|e| e.expiration), Some(86400));
    assert_eq!(team.participants.len(), 3);
    let owner = team.participants.iter().find(|p| p.jid.user == SELF_PHONE).expect("self listed");
    assert!(owner.is_super_admin());
    assert_eq!(owner.lid.as_ref().map(|l| l.user.to_string()).as_deref(), Some(SELF_LID));
    let alice = team.participants.iter().find(|p| p.jid.user == "15550002222").expect("alice");
    assert!(alice.is_admin());

    let club = &groups[&Jid::group("120363000000000002")];
    assert!(!club.is_announcement && !club.is_locked);
    assert!(club.participants.iter().all(|p| p.jid.is_lid()), "LID-addressed group");
    let me = club.participants.iter().find(|p| p.jid.user == SELF_LID).expect("self by lid");
    assert_eq!(me.phone_number.as_ref().map(|j| j.user.to_string()).as_deref(), Some(SELF_PHONE));

    let meta = c.client.groups().get_metadata(&Jid::group("120363000000000001")).await.unwrap();
    assert_eq!(meta.subject, "Sim Team");
    assert!(c.client.groups().get_metadata(&Jid::group("120363000000000003")).await.is_err(), "not a member");
    c.stop().await;
}
