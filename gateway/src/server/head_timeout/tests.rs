use super::*;

const SECOND: Duration = Duration::from_secs(1);

fn timeouts(relaxed: u64, tight: u64, max: usize) -> HeadTimeouts {
    HeadTimeouts::new(
        SECOND * relaxed as u32,
        SECOND * tight as u32,
        max,
        Arc::new(Semaphore::new(max)),
    )
}

async fn expires_after(watchdog: &mut Watchdog, timeouts: &HeadTimeouts) -> Duration {
    let started = Instant::now();
    std::future::poll_fn(|cx| watchdog.poll_expired(cx, timeouts)).await;
    started.elapsed()
}

#[test]
fn the_timeout_is_relaxed_until_three_quarters_then_shrinks_to_the_tight_one() {
    let (relaxed, tight) = (SECOND * 60, SECOND * 4);
    assert_eq!(timeout_for(relaxed, tight, 0, 1000), relaxed);
    assert_eq!(timeout_for(relaxed, tight, 750, 1000), relaxed);
    assert_eq!(timeout_for(relaxed, tight, 875, 1000), SECOND * 32);
    assert_eq!(timeout_for(relaxed, tight, 1000, 1000), tight);
    assert_eq!(timeout_for(relaxed, tight, 5000, 1000), tight);
    // Too few slots to have a quarter: always relaxed until full.
    assert_eq!(timeout_for(relaxed, tight, 1, 1), relaxed);
    assert_eq!(timeout_for(relaxed, tight, 1, 3), relaxed);
    let mut last = relaxed;
    for in_use in 750..=1000 {
        let now = timeout_for(relaxed, tight, in_use, 1000);
        assert!(now <= last && now >= tight, "{in_use}: {now:?}");
        last = now;
    }
    // The tight timeout never exceeds the relaxed one.
    assert_eq!(timeouts(1, 5, 10).tight, SECOND);
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_expires_between_the_timeout_and_half_a_tight_one_later() {
    let policy = timeouts(10, 10, 100);
    let mut watchdog = Watchdog::new(&policy);
    let waited = expires_after(&mut watchdog, &policy).await;
    assert!(waited >= SECOND * 10 && waited <= SECOND * 15, "{waited:?}");

    let policy = timeouts(60, 4, 100);
    let mut watchdog = Watchdog::new(&policy);
    let waited = expires_after(&mut watchdog, &policy).await;
    assert!(waited >= SECOND * 60 && waited <= SECOND * 62, "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_connection_is_cut_sooner_once_the_slots_run_out() {
    let policy = timeouts(60, 4, 8);
    let mut watchdog = Watchdog::new(&policy);
    // Slots plentiful for 20 s: not expired.
    let early = tokio::time::timeout(SECOND * 20, expires_after(&mut watchdog, &policy)).await;
    assert!(early.is_err(), "expired with slots to spare");
    // Every slot taken: the tight timeout applies, and the connection has waited longer.
    let _all = policy.slots.clone().acquire_many_owned(8).await.unwrap();
    let waited = expires_after(&mut watchdog, &policy).await;
    assert!(waited <= SECOND * 2, "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn heads_and_responses_in_progress_hold_it_off() {
    let policy = timeouts(10, 10, 100);
    let mut watchdog = Watchdog::new(&policy);
    // A request every 6 s: never two idle ticks (every 5 s) in a row.
    let started = Instant::now();
    for _ in 0..5 {
        let waiting = tokio::time::timeout(SECOND * 6, expires_after(&mut watchdog, &policy)).await;
        assert!(waiting.is_err(), "expired with a head every 6 s");
        watchdog.head();
    }
    assert!(started.elapsed() >= SECOND * 30);

    // A response being written is not waiting for a head: the connection does not poll its
    // watchdog meanwhile, and a head read just before a long response is still counted, even
    // after an idle tick.
    let mut watchdog = Watchdog::new(&policy);
    let idle = tokio::time::timeout(SECOND * 6, expires_after(&mut watchdog, &policy)).await;
    assert!(idle.is_err(), "expired after one idle tick");
    watchdog.head();
    tokio::time::sleep(SECOND * 60).await;
    let waited = expires_after(&mut watchdog, &policy).await;
    assert!(
        waited >= SECOND * 5,
        "expired at once after a long response"
    );
    assert!(waited <= SECOND * 15, "{waited:?}");
}
