//! Crash safety: a node SIGKILLed under load loses nothing it acknowledged. Every event answered 201 is
//! delivered after a restart on the same database — the queued ones, and the ones in flight at the kill
//! once their lease expires.

use std::collections::HashMap;
use std::time::Duration;

use handoff::domain::DeliveryStatus;
use handoff::sandbox::{AccountOptions, Fault, FaultKind, Sandbox, SandboxConfig};

use crate::load::Poster;
use crate::process_tests;
use crate::support::{Role, Setup};

/// Few delivery slots and a slow account make a backlog form quickly: at the kill some events are
/// delivered, some are in flight and the rest are queued.
const SLOW_NODE: &[(&str, &str)] = &[("HANDOFF__DELIVERY__CONCURRENCY", "16")];

process_tests! {
    async fn every_acknowledged_event_is_delivered_after_a_sigkill_mid_load_and_a_restart(db: TestDb) {
        let setup = Setup::new(db).await;
        let sandbox = Sandbox::start(SandboxConfig::unlimited()).await.expect("sandbox");
        let account = sandbox.create_account(AccountOptions::named("northstar"));
        sandbox.inject_fault(
            "northstar",
            Fault { kind: FaultKind::Latency(Duration::from_millis(100)), count: 100_000 },
        );

        let mut node = setup.start_with(Role::Serve, SLOW_NODE).await;
        let conn = setup.connection(node.addr(), &account, Some(1000)).await;
        setup.rule(node.addr(), &conn, "crash", "crash-safe").await;

        let poster = Poster::start(&setup, node.addr(), "crash", 8, 3000);
        crate::load::eventually(Duration::from_secs(10), "the first acknowledged event", || async {
            (poster.acked() > 0).then_some(())
        })
        .await;
        // Some deliveries done (the slow account sees them first), and at least the ~1 s of load.
        let loaded = std::time::Instant::now() + Duration::from_secs(1);
        crate::load::eventually(Duration::from_secs(15), "20 tagged contacts", || async {
            let tagged = sandbox.state("northstar").contacts.iter().filter(|c| !c.tags.is_empty()).count();
            (tagged >= 20).then_some(())
        })
        .await;
        tokio::time::sleep(loaded.saturating_duration_since(std::time::Instant::now())).await;
        node.kill();
        let posted = poster.finish().await;
        assert!(posted.acked.len() >= 50, "too little load to mean anything: {} acked", posted.acked.len());

        // The state the crash left: the test is only worth something if all three kinds exist.
        let mut at_kill: HashMap<&'static str, usize> = HashMap::new();
        for (email, event) in &posted.acked {
            let res = setup.rule_events(*event).await;
            assert_eq!(res.len(), 1, "acknowledged event of {email} is stored with its one delivery");
            *at_kill.entry(res[0].status.as_str()).or_default() += 1;
        }
        eprintln!("acked {}, failed {}, at the kill: {at_kill:?}", posted.acked.len(), posted.failed.len());
        for status in [DeliveryStatus::Completed, DeliveryStatus::Processing, DeliveryStatus::Pending] {
            assert!(at_kill.get(status.as_str()).copied().unwrap_or(0) > 0, "no {status:?} delivery at the kill: {at_kill:?}");
        }

        sandbox.clear_faults("northstar");
        let _restarted = setup.start(Role::Serve).await;
        let events: Vec<_> = posted.acked.iter().map(|(_, e)| *e).collect();
        // Leases of the deliveries in flight at the kill expire 5 s after their claim.
        setup.wait_all_completed(&events, Duration::from_secs(30)).await;
        for (email, _) in &posted.acked {
            assert_eq!(sandbox.contact_tags_by_email("northstar", email), ["crash-safe"], "{email}");
        }
    }
}
