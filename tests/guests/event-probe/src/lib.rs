//! A hostile event handler for the sandbox tests: what it does with a `message.received`
//! event is the message's text — `loop` spins forever, `grow` allocates until it is stopped,
//! `panic` panics, `fail` asks for the event again; anything else is handled (and logged with
//! `wasi:logging`, so a test can see which events it was handed).

wit_bindgen::generate!({
    world: "event-handler",
    path: "../../../wit",
    generate_all,
});

use exports::waedge::gateway::events::{Event, Guest};
use wasi::logging::logging::{Level, log};

struct EventProbe;

impl Guest for EventProbe {
    fn handle(event: Event) -> Result<(), String> {
        let data: serde_json::Value = serde_json::from_str(&event.data).map_err(|e| e.to_string())?;
        match data["message"]["text"].as_str().unwrap_or_default() {
            "loop" => loop {
                std::hint::black_box(&event);
            },
            "grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("the probe panics on request"),
            "fail" => Err("the probe asks for the event again".into()),
            text => {
                log(Level::Info, "event-probe", &format!("handled {} {} {text}", event.type_, event.id));
                Ok(())
            }
        }
    }
}

export!(EventProbe);
