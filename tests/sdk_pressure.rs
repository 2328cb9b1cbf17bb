//! The SDK keeps its promises when the application does not keep up.

mod common;

use chathub::core::Customer;
use common::TestHub;

/// More queue updates than the SDK's event buffer holds.
const STARTS: usize = 4_300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incoming_list_stays_current_while_events_go_unread() {
    let config = concat!(
        roomy_limits!(),
        "[[channel]]\nname = \"support\"\noffline_form = false\nqueue_limit = 100000\n",
        "[[agent]]\nid = \"alice\"\ntoken = \"test-token-0123456789\"\n",
    );
    let hub = TestHub::start(config).await;
    // Alice reads her incoming list and badge, never her events.
    let alice = hub.agent("alice").await;
    let customers: Vec<_> = futures::future::join_all((0..8).map(|_| hub.customer())).await;
    let starts = (0..STARTS).map(|n| {
        let customer = customers[n % customers.len()].clone();
        async move {
            common::start(
                &customer,
                "support",
                Customer::default(),
                &format!("hi {n}"),
            )
            .await
        }
    });
    // A few at a time, so the test does not depend on how many the hub
    // takes at once.
    let mut starts = futures::stream::iter(starts).buffer_unordered(32);
    use futures::StreamExt;
    while starts.next().await.is_some() {}
    let mut waiting = 0;
    for _ in 0..500 {
        waiting = alice.incoming("support").map_or(0, |list| list.waiting);
        if waiting as usize == STARTS {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        waiting as usize, STARTS,
        "the badge counts every waiting chat though no event was read"
    );
    hub.stop().await;
}
