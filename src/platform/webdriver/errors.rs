//! What a failed WebDriver command means for a send: the [`Failure`] code
//! a harness error gets. A browser or driver that is gone is
//! `session_lost` (the next use rebuilds the session), a command that ran
//! out of time is `driver_timeout`, an element the profile names that is
//! not there is `element_missing` (or the step's own failure while logging
//! in), and anything else is what the caller was doing (`during`).

use fantoccini::error::CmdError;

use crate::dataset::Failure;
use crate::platform::PlatformError;

/// Map a WebDriver error to a failure code; `during` when nothing more precise.
pub(super) fn classify(e: CmdError, during: Failure, what: &str) -> PlatformError {
    let failure = failure_of(&e, during);
    PlatformError::new(failure, format!("{what}: {e}"))
}

/// As [`classify`], without the WebDriver error text (which may echo input).
pub(super) fn classify_quiet(e: CmdError, during: Failure, what: &str) -> PlatformError {
    PlatformError::new(failure_of(&e, during), what.to_string())
}

fn failure_of(e: &CmdError, during: Failure) -> Failure {
    if matches!(
        e,
        CmdError::Lost(_) | CmdError::Failed(_) | CmdError::FailedC(_)
    ) || e.is_invalid_session_id()
        || e.is_no_such_window()
        || e.is_session_not_created()
    {
        return Failure::SessionLost;
    }
    if let CmdError::Standard(wd) = e {
        let m = wd.message.to_lowercase();
        if m.contains("not reachable")
            || m.contains("disconnected")
            || m.contains("session deleted")
        {
            return Failure::SessionLost;
        }
    }
    if e.is_timeout() || e.is_script_timeout() {
        return Failure::DriverTimeout;
    }
    // The client's own alert that its requests to the platform failed.
    if let CmdError::Standard(wd) = e {
        let m = wd.message.to_lowercase();
        if m.contains("alert")
            && [
                "failed to fetch",
                "networkerror",
                "err_connection",
                "load failed",
            ]
            .iter()
            .any(|w| m.contains(w))
        {
            return Failure::PlatformUnreachable;
        }
    }
    if matches!(e, CmdError::WaitTimeout) || e.is_no_such_element() {
        return if during == Failure::LoginFailed {
            during
        } else {
            Failure::ElementMissing
        };
    }
    during
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use fantoccini::error::{ErrorStatus, WebDriver};

    use super::*;

    /// The recorded error `name` as fantoccini hands it over.
    fn recorded(name: &str) -> CmdError {
        let all: serde_json::Value =
            serde_json::from_str(include_str!("recorded-errors.json")).unwrap();
        let v = &all["responses"][name]["value"];
        let status = ErrorStatus::from_str(v["error"].as_str().unwrap()).unwrap();
        CmdError::Standard(WebDriver::new(
            status,
            v["message"].as_str().unwrap().to_string(),
        ))
    }

    #[test]
    fn recorded_chromedriver_errors_get_their_failure_codes() {
        use Failure::*;
        // (recorded response, what the driver was doing, the failure).
        let table = [
            ("no_such_element", UploadFailed, ElementMissing),
            ("no_such_element", LoginFailed, LoginFailed),
            ("script_timeout", SendFailed, DriverTimeout),
            ("page_load_timeout", ChatNotFound, DriverTimeout),
            ("stale_element", SendFailed, SendFailed),
            ("no_such_window", UploadFailed, SessionLost),
            ("invalid_session_id", SendFailed, SessionLost),
            ("browser_killed", UploadFailed, SessionLost),
            ("browser_killed_again", LoginFailed, SessionLost),
        ];
        for (name, during, want) in table {
            assert_eq!(
                failure_of(&recorded(name), during),
                want,
                "{name} during {during}"
            );
        }
    }

    #[test]
    fn a_lost_driver_is_a_lost_session_and_a_wait_is_a_missing_element() {
        let lost = CmdError::Lost(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(failure_of(&lost, Failure::SendFailed), Failure::SessionLost);
        let wait = CmdError::WaitTimeout;
        assert_eq!(
            failure_of(&wait, Failure::SendFailed),
            Failure::ElementMissing
        );
        assert_eq!(
            failure_of(&wait, Failure::LoginFailed),
            Failure::LoginFailed
        );
        // Messages without a session-lost word keep the caller's failure.
        let other = CmdError::Standard(WebDriver::new(
            ErrorStatus::UnknownError,
            "unknown error: cannot focus element",
        ));
        assert_eq!(
            failure_of(&other, Failure::UploadFailed),
            Failure::UploadFailed
        );
        let down = CmdError::Standard(WebDriver::new(
            ErrorStatus::UnexpectedAlertOpen,
            "unexpected alert open: {Alert text : Failed to fetch}",
        ));
        assert_eq!(
            failure_of(&down, Failure::SendFailed),
            Failure::PlatformUnreachable
        );
        let gone = CmdError::Standard(WebDriver::new(
            ErrorStatus::UnknownError,
            "unknown error: chrome not reachable",
        ));
        assert_eq!(
            failure_of(&gone, Failure::UploadFailed),
            Failure::SessionLost
        );
    }

    #[test]
    fn the_quiet_form_leaves_the_driver_text_out() {
        let e = classify_quiet(
            recorded("no_such_element"),
            Failure::SendFailed,
            "typing the text",
        );
        assert_eq!(e.failure, Failure::ElementMissing);
        assert_eq!(e.message, "typing the text");
        let e = classify(
            recorded("no_such_element"),
            Failure::SendFailed,
            "typing the text",
        );
        assert!(
            e.message.contains("Unable to locate element"),
            "{}",
            e.message
        );
    }
}
