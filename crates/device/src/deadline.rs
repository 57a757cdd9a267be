//! The deadline of the request a session call serves, for calls that leave the process.
//!
//! A call bounded by its caller (the request's budget) is simply dropped when the budget runs
//! out; a call that travels to another node must also say how long it has, so the node
//! answering it gives up at the same moment. The caller runs the call [`within`] its
//! deadline; whatever carries the call further reads it with [`current`].

use std::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `call` with `deadline` as its [`current`] deadline.
pub async fn within<T>(deadline: Instant, call: impl Future<Output = T>) -> T {
    DEADLINE.scope(deadline, call).await
}

/// The deadline of the call under way, if its caller set one ([`within`]).
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_call_sees_the_deadline_it_runs_within_and_none_outside() {
        let deadline = Instant::now() + Duration::from_secs(3);
        assert_eq!(within(deadline, async { current() }).await, Some(deadline));
        assert_eq!(current(), None);
    }
}
