//! Gathering and relaying on the simulated network of `tests.rs`: a STUN
//! server, a TURN server (see `turn_sim.rs`) and the str0m WHIP server, no
//! sockets, on a simulated clock.

use super::gather::GATHER_DEADLINE;
use super::tests::*;
use super::turn_sim::{Behaviour, TurnSim, PASSWORD, USER};
use super::*;
use crate::live::tests::encoded_stream;
use crate::meta::FrameMeta;

fn net_with(servers: Vec<IceServer>) -> Net {
    let mut config = config(URL);
    config.ice_servers = servers;
    let reply = Reply::Answer {
        location: "/whip/resource/1",
    };
    Net::with_config(config, vec![reply], 1)
}

fn stun_server() -> IceServer {
    IceServer {
        url: format!("stun:{STUN_ADDR}"),
        username: None,
        credential: None,
    }
}

fn turn_server(password: &str) -> IceServer {
    IceServer {
        url: format!("turn:{TURN_ADDR}?transport=udp"),
        username: Some(USER.into()),
        credential: Some(Secret::new(password)),
    }
}

fn sim(behaviour: Behaviour) -> TurnSim {
    TurnSim::new(behaviour, MAPPED_ADDR.parse().unwrap(), RELAYED_ADDR.parse().unwrap())
}

fn first_offer(net: &Net) -> String {
    let (_, post) = net.requests.first().expect("an offer was posted");
    post.body.clone().unwrap_or_default()
}

/// How long after the start the first offer went out.
fn offered_after(net: &Net, start: std::time::Instant) -> std::time::Duration {
    net.posts()[0] - start
}

fn turn(net: &Net) -> &TurnSim {
    net.turn.as_ref().unwrap()
}

#[test]
fn a_stun_answer_puts_a_server_reflexive_candidate_in_the_offer() {
    let mut net = net_with(vec![stun_server()]);
    net.stun = Some(sim(Behaviour::Normal));
    let start = net.now;
    net.run_until(2 * S, 5 * MS, Net::live).expect("live");
    let offer = first_offer(&net);
    assert!(offer.contains("203.0.113.9 40000 typ srflx"), "{offer}");
    assert!(offer.contains("typ host"), "{offer}");
    assert!(offered_after(&net, start) < 10 * MS, "offered once the answer came");
    let status = net.publisher.status(net.now);
    assert_eq!(status.candidates, "host, srflx");
    assert!(status.ice_problems.is_empty(), "{status:?}");
}

#[test]
fn a_silent_stun_server_holds_the_offer_until_the_deadline_only() {
    let mut net = net_with(vec![stun_server()]);
    net.stun = Some(sim(Behaviour::Silent));
    let start = net.now;
    net.run_until(5 * S, 5 * MS, Net::live)
        .expect("live with host candidates");
    let waited = offered_after(&net, start);
    assert!(
        waited >= GATHER_DEADLINE && waited < GATHER_DEADLINE + 10 * MS,
        "{waited:?}"
    );
    let offer = first_offer(&net);
    assert!(!offer.contains("srflx") && offer.contains("typ host"), "{offer}");
    let sends = net.stun.as_ref().unwrap().count("Binding");
    assert_eq!(sends, 4, "sent at 0, 250, 750 and 1750 ms");
    let status = net.publisher.status(net.now);
    assert_eq!(status.candidates, "host");
    assert_eq!(status.ice_problems, vec![format!("stun:{STUN_ADDR}: no answer")]);
}

#[test]
fn turn_asks_for_credentials_then_allocates_a_relay_candidate() {
    let mut net = net_with(vec![turn_server(PASSWORD)]);
    net.turn = Some(sim(Behaviour::Normal));
    net.run_until(2 * S, 5 * MS, Net::live).expect("live");
    let offer = first_offer(&net);
    assert!(offer.contains("127.0.0.3 50000 typ relay"), "{offer}");
    assert!(
        offer.contains("203.0.113.9 40000 typ srflx"),
        "the mapped address too: {offer}"
    );
    assert_eq!(turn(&net).count("Allocate"), 2, "unsigned, 401, then signed");
    let status = net.publisher.status(net.now);
    assert_eq!(status.candidates, "host, srflx, relay");
    let json = serde_json::to_string(&status).unwrap();
    assert!(!json.contains(PASSWORD) && !json.contains(USER), "{json}");
}

#[test]
fn a_stale_nonce_is_replaced_and_the_allocation_made() {
    let mut net = net_with(vec![turn_server(PASSWORD)]);
    net.turn = Some(sim(Behaviour::StaleOnce));
    net.run_until(2 * S, 5 * MS, Net::live).expect("live");
    assert!(first_offer(&net).contains("typ relay"));
    assert_eq!(
        turn(&net).count("Allocate"),
        3,
        "401, 438 with a new nonce, then success"
    );
}

#[test]
fn media_goes_both_ways_through_the_relay_when_nothing_else_does() {
    let stream = encoded_stream(30);
    let mut net = net_with(vec![turn_server(PASSWORD)]);
    net.turn = Some(sim(Behaviour::Normal));
    net.direct_blocked = true;
    let took = net.run_until(3 * S, 5 * MS, Net::live).expect("live through the relay");
    println!("live through the relay after {took:?}");
    assert_eq!(
        turn(&net).permissions,
        vec!["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    for frame in &stream {
        net.send(frame);
    }
    net.advance(200 * MS);
    assert_eq!(net.server.received.len(), stream.len(), "every frame arrives");
    for (data, sent) in net.server.received.iter().zip(&stream) {
        let meta = FrameMeta::find_in_temporal_unit(&data.data).unwrap().expect("metadata");
        assert_eq!(meta, sent.info.to_meta());
    }
    let rtt = net.publisher.status(net.now).rtt_ms;
    assert!(rtt.is_some(), "receiver reports came back through the relay");
}

#[test]
fn without_a_relay_that_network_never_connects() {
    let mut net = net_with(Vec::new());
    net.direct_blocked = true;
    let failed = |net: &Net| net.state().contains("ICE failed");
    net.run_until(12 * S, 50 * MS, |net| net.live() || failed(net));
    assert!(failed(&net), "{}", net.state());
}

#[test]
fn the_allocation_and_permissions_are_renewed_in_time_and_released_at_the_end() {
    let mut net = net_with(vec![turn_server(PASSWORD)]);
    let mut server = sim(Behaviour::Normal);
    server.lifetime = 120;
    net.turn = Some(server);
    net.direct_blocked = true;
    net.run_until(3 * S, 5 * MS, Net::live).expect("live");
    net.run_until(310 * S, 250 * MS, |_| false);
    assert!(net.live(), "{}", net.state());
    let server = turn(&net);
    let refreshes: Vec<_> = server
        .requests
        .iter()
        .filter(|(_, m, _)| m == "Refresh")
        .map(|(t, _, _)| *t)
        .collect();
    assert!(refreshes.len() >= 4, "{:?}", server.requests);
    let allocated = server
        .requests
        .iter()
        .rev()
        .find(|(_, m, _)| m == "Allocate")
        .unwrap()
        .0;
    let mut last = allocated;
    for at in refreshes {
        assert!(at - last < 120 * S, "refreshed before the 120 s lifetime ran out");
        last = at;
    }
    assert!(
        server.count("CreatePermission") >= 2,
        "renewed before 300 s: {:?}",
        server.requests
    );
    net.publisher.close(net.now);
    net.exchange();
    let (_, method, lifetime) = turn(&net).requests.last().unwrap().clone();
    assert_eq!((method.as_str(), lifetime), ("Refresh", Some(0)), "released");
    assert!(!turn(&net).allocated);
}

#[test]
fn wrong_credentials_are_reported_and_publishing_goes_on() {
    let mut net = net_with(vec![turn_server("not-the-password")]);
    net.turn = Some(sim(Behaviour::Normal));
    net.run_until(3 * S, 5 * MS, Net::live)
        .expect("live with the host candidate");
    assert_eq!(turn(&net).count("Allocate"), 2, "no retry loop");
    let status = net.publisher.status(net.now);
    assert_eq!(status.candidates, "host");
    assert_eq!(status.ice_problems.len(), 1, "{status:?}");
    assert!(status.ice_problems[0].contains("401 again"), "{status:?}");
    let json = serde_json::to_string(&status).unwrap();
    assert!(!json.contains("not-the-password"), "{json}");
}

#[test]
fn a_turn_server_answering_garbage_or_an_error_is_reported_not_fatal() {
    for (behaviour, reason) in [
        (Behaviour::Garbage, "no answer"),
        (Behaviour::Error(403), "403 Refused by test"),
    ] {
        let mut net = net_with(vec![turn_server(PASSWORD)]);
        net.turn = Some(sim(behaviour));
        net.run_until(5 * S, 5 * MS, Net::live)
            .expect("live with the host candidate");
        let status = net.publisher.status(net.now);
        assert!(
            status.ice_problems.iter().any(|p| p.ends_with(reason)),
            "{behaviour:?}: {status:?}"
        );
        assert!(
            turn(&net).count("Allocate") <= 4,
            "{behaviour:?}: {:?}",
            turn(&net).requests
        );
        assert!(!first_offer(&net).contains("typ relay"));
    }
}

#[test]
fn turns_and_tcp_are_refused_once_with_a_reason() {
    let servers = vec![
        IceServer {
            url: "turns:turn.example.net".into(),
            username: Some(USER.into()),
            credential: Some(Secret::new(PASSWORD)),
        },
        stun_server(),
    ];
    let mut net = net_with(servers);
    net.stun = Some(sim(Behaviour::Normal));
    net.run_until(2 * S, 5 * MS, Net::live).expect("live");
    assert!(first_offer(&net).contains("typ srflx"), "the other server is used");
}

#[test]
fn closing_while_gathering_releases_what_was_allocated() {
    let mut net = net_with(vec![turn_server(PASSWORD), stun_server()]);
    net.turn = Some(sim(Behaviour::Normal));
    net.stun = Some(sim(Behaviour::Silent));
    net.run_until(S, 10 * MS, |net| net.turn.as_ref().unwrap().allocated);
    assert!(net.posts().is_empty(), "still waiting for the STUN server");
    net.publisher.close(net.now);
    net.exchange();
    let (_, method, lifetime) = turn(&net).requests.last().unwrap().clone();
    assert_eq!((method.as_str(), lifetime), ("Refresh", Some(0)));
    assert_eq!(net.publisher.poll_timeout(), None);
}

#[test]
fn an_allocation_left_from_a_restart_is_released_and_made_again() {
    let mut net = net_with(vec![turn_server(PASSWORD)]);
    net.turn = Some(sim(Behaviour::Leftover));
    net.run_until(2 * S, 5 * MS, Net::live).expect("live");
    assert!(first_offer(&net).contains("typ relay"));
    let asked: Vec<_> = turn(&net).requests.iter().map(|(_, m, l)| (m.as_str(), *l)).collect();
    let expected = [
        ("Allocate", None),
        ("Refresh", Some(0)),
        ("Refresh", Some(0)),
        ("Allocate", None),
    ];
    assert_eq!(asked[..4], expected, "437, 401, the old one released, then allocated");
}

#[test]
fn server_names_are_looked_up_by_the_shell_and_a_failed_lookup_is_reported() {
    let named = |url: &str| IceServer {
        url: url.into(),
        username: None,
        credential: None,
    };
    let mut net = net_with(vec![named("stun:stun.sim.test:3478"), named("stun:nowhere.test")]);
    net.stun = Some(sim(Behaviour::Normal));
    net.dns.push(("stun.sim.test", STUN_ADDR.parse().unwrap()));
    net.run_until(2 * S, 5 * MS, Net::live).expect("live");
    assert!(first_offer(&net).contains("203.0.113.9 40000 typ srflx"));
    let status = net.publisher.status(net.now);
    assert_eq!(
        status.ice_problems,
        vec!["stun:nowhere.test: DNS failure: no such host".to_owned()]
    );
}
