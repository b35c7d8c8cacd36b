//! Graceful stop: SIGTERM under load ends the process with status 0 inside the grace period, every
//! acknowledged event is stored, nothing is left leased, and a restart delivers the rest.

use std::time::Duration;

use handoff::domain::DeliveryStatus;
use handoff::sandbox::{AccountOptions, Fault, FaultKind, Sandbox, SandboxConfig};

use crate::load::{Poster, eventually};
use crate::process_tests;
use crate::support::{Role, Setup};

const GRACE_SECONDS: u64 = 5;

process_tests! {
    async fn sigterm_under_load_exits_zero_in_the_grace_period_and_a_restart_delivers_every_acknowledged_event(db: TestDb) {
        let setup = Setup::new(db).await;
        let sandbox = Sandbox::start(SandboxConfig::unlimited()).await.expect("sandbox");
        let account = sandbox.create_account(AccountOptions::named("northstar"));
        // A slow account and few delivery slots: at the SIGTERM, deliveries are in flight and queued.
        sandbox.inject_fault(
            "northstar",
            Fault { kind: FaultKind::Latency(Duration::from_millis(100)), count: 100_000 },
        );
        let grace = GRACE_SECONDS.to_string();
        let mut node = setup
            .start_with(Role::Serve, &[
                ("HANDOFF__DELIVERY__CONCURRENCY", "16"),
                ("HANDOFF__SERVER__SHUTDOWN_GRACE_SECONDS", &grace),
            ])
            .await;
        let conn = setup.connection(node.addr(), &account, Some(1000)).await;
        setup.rule(node.addr(), &conn, "graceful", "graceful-stop").await;

        let poster = Poster::start(&setup, node.addr(), "graceful", 8, 3000);
        eventually(Duration::from_secs(10), "the first acknowledged event", || async {
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
        let stopping = std::time::Instant::now();
        node.terminate();
        let status = node
            .wait_exit(Duration::from_secs(GRACE_SECONDS))
            .await
            .unwrap_or_else(|| panic!("still running {GRACE_SECONDS} s after SIGTERM"));
        let took = stopping.elapsed();
        assert!(status.success(), "exit status after SIGTERM: {status:?}");
        let posted = poster.finish().await;
        eprintln!("acked {}, failed {}, stopped in {took:?}", posted.acked.len(), posted.failed.len());
        assert!(posted.acked.len() >= 50, "too little load to mean anything: {} acked", posted.acked.len());

        let mut completed = 0;
        for (email, event) in &posted.acked {
            let stored = setup.db.store.get_event(setup.org(), *event).await.expect("get event");
            assert!(stored.is_some(), "acknowledged event of {email} is not stored");
            let res = setup.rule_events(*event).await;
            assert_eq!(res.len(), 1, "event of {email} has its one delivery");
            // In-flight work was finished and recorded (or released), not left under a lease.
            assert_ne!(res[0].status, DeliveryStatus::Processing, "event of {email} left leased");
            completed += usize::from(res[0].status == DeliveryStatus::Completed);
        }
        assert!(completed < posted.acked.len(), "nothing was queued at the SIGTERM");

        sandbox.clear_faults("northstar");
        // A long lease: a delivery the stop had left leased would miss the deadline below.
        let _restarted = setup.start_with(Role::Serve, &[("HANDOFF__DELIVERY__LEASE_SECONDS", "60")]).await;
        let events: Vec<_> = posted.acked.iter().map(|(_, e)| *e).collect();
        setup.wait_all_completed(&events, Duration::from_secs(20)).await;
        for (email, _) in &posted.acked {
            assert_eq!(sandbox.contact_tags_by_email("northstar", email), ["graceful-stop"], "{email}");
        }
    }
}
