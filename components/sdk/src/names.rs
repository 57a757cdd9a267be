//! The contract's names for its enums and variants, as API documents and messages show them.

use std::fmt;

use crate::{DayOfWeek, DeviceState, OpeningMode};

impl DeviceState {
    /// The state's name in the contract: `unlinked`, `connecting`, `connected`,
    /// `disconnected`, `logged-out`, `replaced` or `banned`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Unlinked => "unlinked",
            DeviceState::Connecting => "connecting",
            DeviceState::Connected => "connected",
            DeviceState::Disconnected => "disconnected",
            DeviceState::LoggedOut => "logged-out",
            DeviceState::Replaced => "replaced",
            DeviceState::Banned => "banned",
        }
    }
}

/// Writes [`DeviceState::as_str`].
impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DayOfWeek {
    /// The day as WhatsApp spells it: `sun`, `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, or an
    /// unknown day's text as WhatsApp sent it.
    pub fn as_str(&self) -> &str {
        match self {
            DayOfWeek::Monday => "mon",
            DayOfWeek::Tuesday => "tue",
            DayOfWeek::Wednesday => "wed",
            DayOfWeek::Thursday => "thu",
            DayOfWeek::Friday => "fri",
            DayOfWeek::Saturday => "sat",
            DayOfWeek::Sunday => "sun",
            DayOfWeek::Other(day) => day,
        }
    }
}

impl OpeningMode {
    /// The mode as WhatsApp spells it: `specific_hours`, `open_24h`, `appointment_only`, or an
    /// unknown mode's text as WhatsApp sent it.
    pub fn as_str(&self) -> &str {
        match self {
            OpeningMode::SpecificHours => "specific_hours",
            OpeningMode::OpenAllDay => "open_24h",
            OpeningMode::AppointmentOnly => "appointment_only",
            OpeningMode::Other(mode) => mode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_states_read_as_in_the_contract() {
        let states = [
            DeviceState::Unlinked,
            DeviceState::Connecting,
            DeviceState::Connected,
            DeviceState::Disconnected,
            DeviceState::LoggedOut,
            DeviceState::Replaced,
            DeviceState::Banned,
        ];
        let names: Vec<String> = states.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["unlinked", "connecting", "connected", "disconnected", "logged-out", "replaced", "banned"]);
    }

    #[test]
    fn hours_read_as_whatsapp_sends_them() {
        assert_eq!(DayOfWeek::Sunday.as_str(), "sun");
        assert_eq!(DayOfWeek::Wednesday.as_str(), "wed");
        assert_eq!(DayOfWeek::Other("holiday".to_string()).as_str(), "holiday");
        assert_eq!(OpeningMode::OpenAllDay.as_str(), "open_24h");
        assert_eq!(OpeningMode::SpecificHours.as_str(), "specific_hours");
        assert_eq!(OpeningMode::Other("closed".to_string()).as_str(), "closed");
    }
}
