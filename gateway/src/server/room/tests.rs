use super::*;
use crate::held::Shed;

fn room(max_connections: usize, shed_at: f64) -> Arc<Room> {
    let limits = Limits {
        max_connections,
        shed_at,
        ..Limits::default()
    };
    let counter = prometheus::IntCounter::new("idle", "idle").unwrap();
    Arc::new(Room::new(
        &limits,
        Arc::new(Semaphore::new(max_connections)),
        counter,
    ))
}

#[test]
fn the_target_is_the_share_of_the_cap_rounded_up_and_never_zero() {
    assert_eq!(target(4, 0.75), 3);
    assert_eq!(target(200, 0.9), 180);
    assert_eq!(target(15_000, 0.9), 13_500);
    assert_eq!(target(3, 1.0), 3);
    assert_eq!(target(1, 0.9), 1);
    assert_eq!(target(10, 0.01), 1);
}

#[tokio::test(start_paused = true)]
async fn past_the_target_the_longest_holds_are_shed_down_to_it() {
    let room = room(4, 0.5);
    let mut slots = Vec::new();
    let sheds: Vec<Arc<Shed>> = (0..4).map(|_| Arc::new(Shed::default())).collect();
    let mut holds = Vec::new();
    for shed in &sheds {
        slots.push(room.try_slot().expect("a free slot"));
        holds.push(room.hold(shed.clone()));
    }
    // Four in use, the target two: the two longest held go, and room is on its way.
    assert!(room.relieve(0).await);
    assert_eq!(room.holds.len(), 2);
    assert_eq!(room.holds.freeing(), 2);
    // Asking again makes no more room while theirs is on its way.
    assert!(room.relieve(0).await);
    assert_eq!(room.holds.len(), 2);
    let newest = holds.pop().unwrap();
    assert!(newest.end().is_none(), "the newest was not shed");
    let oldest = holds.remove(0);
    assert!(oldest.end().is_some(), "the oldest was shed");
}

#[tokio::test(start_paused = true)]
async fn a_connection_past_the_cap_gets_the_slot_a_shed_hold_frees() {
    let room = room(1, 1.0);
    let slot = room.try_slot().expect("the only slot");
    let shed = Arc::new(Shed::default());
    let hold = room.hold(shed.clone());
    assert!(room.try_slot().is_none());
    let waiter = room.waiter().expect("room to wait");
    let stop = CancellationToken::new();
    let waiting = tokio::spawn(async move { waiter.slot(&stop).await.is_some() });
    room.relieve(0).await;
    // The call is asked to answer; its connection closes and gives its slot back.
    tokio::time::timeout(Duration::from_secs(1), shed.requested())
        .await
        .expect("the hold was shed");
    let leaving = hold.end().expect("shed");
    drop(slot);
    drop(leaving);
    assert!(
        waiting.await.unwrap(),
        "the waiting connection got the slot"
    );
}

#[tokio::test(start_paused = true)]
async fn with_nothing_to_let_go_a_connection_past_the_cap_is_refused() {
    let room = room(1, 1.0);
    let _slot = room.try_slot().expect("the only slot");
    let waiter = room.waiter().expect("room to wait");
    let stop = CancellationToken::new();
    let waiting = tokio::spawn(async move { waiter.slot(&stop).await.is_some() });
    tokio::task::yield_now().await;
    assert!(!room.relieve(0).await, "nothing to let go");
    let refused = tokio::time::timeout(WAIT_LIMIT / 2, waiting)
        .await
        .expect("refused before the wait limit");
    assert!(!refused.unwrap());
    assert_eq!(room.waiting.load(Ordering::Acquire), 0);
    // Out of descriptors with nothing to let go: no room coming either.
    assert!(!room.relieve(1).await);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_is_only_for_the_connections_that_waited_before_its_relief() {
    let room = room(2, 1.0);
    let _slots = [room.try_slot(), room.try_slot()];
    let early = room.waiter().expect("room to wait");
    assert!(!room.relieve(0).await, "nothing to let go");
    // A connection that comes after that relief is not refused by it: its own relief decides.
    let late = room.waiter().expect("room to wait");
    assert!(!room.take_refusal(late.since));
    assert!(room.take_refusal(early.since));
    assert!(
        !room.take_refusal(early.since),
        "one refusal for one connection"
    );
}
