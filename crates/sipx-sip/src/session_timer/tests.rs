#![allow(clippy::unwrap_used)]

use super::*;
use crate::msg::{SipMessage, parse_datagram};

fn invite(extra: &str) -> Request {
    let raw = format!(
        "INVITE sip:echo@sipx.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@192.0.2.1>;tag=1\r\nTo: <sip:echo@sipx.test>\r\n\
         Call-ID: c1\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    match parse_datagram(raw.as_bytes()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn values_parse_with_their_refresher_and_junk_is_refused() {
    assert_eq!(
        SessionExpires::parse("1800;refresher=uac"),
        Some(SessionExpires {
            delta: 1800,
            refresher: Some(Refresher::Uac)
        })
    );
    assert_eq!(
        SessionExpires::parse(" 90 ; x=1 ; REFRESHER = UAS "),
        Some(SessionExpires {
            delta: 90,
            refresher: Some(Refresher::Uas)
        })
    );
    for bad in ["", "abc", "-5", "1800;refresher=both", "10.5", "18 00"] {
        assert_eq!(SessionExpires::parse(bad), None, "{bad:?}");
    }
    assert_eq!(
        SessionExpires::parse("600").unwrap().to_value(),
        "600",
        "no refresher given, none written"
    );
}

#[test]
fn the_uas_takes_the_interval_and_lets_a_supporting_uac_refresh() {
    let req = invite("Supported: timer, replaces\r\nSession-Expires: 1800\r\nMin-SE: 90\r\n");
    let timer = negotiate_uas(&req, MIN_SE_FLOOR);
    assert_eq!(
        timer,
        UasTimer::On {
            interval: 1800,
            refresher: Refresher::Uac,
            uac_supports: true
        }
    );
    assert_eq!(
        timer.answer_headers(),
        [
            ("Session-Expires", "1800;refresher=uac".to_owned()),
            ("Require", "timer".to_owned())
        ]
    );
    // The compact form, and an explicit refresher=uas, honoured (by UPDATE or re-INVITE).
    let req = invite("Supported: timer\r\nx: 600;refresher=uas\r\n");
    let timer = negotiate_uas(&req, MIN_SE_FLOOR);
    assert_eq!(
        timer,
        UasTimer::On {
            interval: 600,
            refresher: Refresher::Uas,
            uac_supports: true
        }
    );
    // The UAC supports the timer: the answer says the session is timed (§9, SHOULD).
    assert_eq!(
        timer.answer_headers(),
        [
            ("Session-Expires", "600;refresher=uas".to_owned()),
            ("Require", "timer".to_owned())
        ]
    );
}

#[test]
fn too_small_malformed_absent_and_proxy_asked_timers() {
    let small = invite("Supported: timer\r\nSession-Expires: 60\r\n");
    assert_eq!(
        negotiate_uas(&small, MIN_SE_FLOOR),
        UasTimer::TooSmall { min_se: 90 }
    );
    let junk = invite("Session-Expires: soon\r\n");
    assert!(matches!(
        negotiate_uas(&junk, MIN_SE_FLOOR),
        UasTimer::Malformed(_)
    ));
    assert_eq!(negotiate_uas(&invite(""), MIN_SE_FLOOR), UasTimer::Off);
    // A proxy asked for a timer the UAC does not support: we refresh, even when the proxy
    // named the UAC (§9), and require nothing of a UAC that does not know the extension.
    for proxied in [
        "Session-Expires: 1800\r\n",
        "Session-Expires: 1800;refresher=uac\r\n",
    ] {
        let timer = negotiate_uas(&invite(proxied), MIN_SE_FLOOR);
        assert_eq!(
            timer,
            UasTimer::On {
                interval: 1800,
                refresher: Refresher::Uas,
                uac_supports: false
            },
            "{proxied}"
        );
        assert_eq!(
            timer.answer_headers(),
            [("Session-Expires", "1800;refresher=uas".to_owned())]
        );
    }
}

#[test]
fn the_waiting_side_expires_before_the_interval_ends() {
    let t0 = Instant::now();
    let mut timer = SessionTimer::new(t0, 90, false, MIN_SE_FLOOR);
    // 90 s less the smaller of 32 s and a third: 60 s.
    assert_eq!(timer.poll_timeout(), t0 + Duration::from_secs(60));
    assert_eq!(timer.handle_timeout(t0 + Duration::from_secs(59)), None);
    // The peer's refresh at 45 s moves it.
    timer.refreshed(t0 + Duration::from_secs(45), 1800, false);
    assert_eq!(
        timer.poll_timeout(),
        t0 + Duration::from_secs(45 + 1800 - 32)
    );
    assert_eq!(
        timer.handle_timeout(t0 + Duration::from_secs(45 + 1768)),
        Some(TimerAction::Expired)
    );
}

#[test]
fn the_refresher_refreshes_half_way_and_follows_the_answers() {
    let t0 = Instant::now();
    let mut timer = SessionTimer::new(t0, 100, true, MIN_SE_FLOOR);
    assert_eq!(timer.poll_timeout(), t0 + Duration::from_secs(50));
    let at = t0 + Duration::from_secs(50);
    assert_eq!(timer.handle_timeout(at), Some(TimerAction::Refresh));
    // Asked once; until the answer, the next deadline is the session's end.
    assert_eq!(timer.handle_timeout(at), None);
    assert_eq!(timer.poll_timeout(), t0 + Duration::from_secs(100));
    // 422 Min-SE 120: again at once, with the bigger interval.
    assert!(timer.on_refresh_outcome(at, timer.epoch(), RefreshOutcome::TooSmall(120)));
    assert_eq!(timer.handle_timeout(at), Some(TimerAction::Refresh));
    assert_eq!(timer.interval(), 120);
    // A 500: again 2 s later.
    assert!(timer.on_refresh_outcome(at, timer.epoch(), RefreshOutcome::Failed));
    assert_eq!(timer.poll_timeout(), at + Duration::from_secs(2));
    assert_eq!(
        timer.handle_timeout(at + Duration::from_secs(2)),
        Some(TimerAction::Refresh)
    );
    // 200 naming the peer as refresher from now on.
    let done = SessionExpires {
        delta: 300,
        refresher: Some(Refresher::Uas),
    };
    let now = at + Duration::from_secs(3);
    assert!(timer.on_refresh_outcome(now, timer.epoch(), RefreshOutcome::Done(Some(done))));
    assert!(!timer.ours());
    assert_eq!(timer.poll_timeout(), now + Duration::from_secs(300 - 32));
    // A 2xx with no Session-Expires ends the timer; 481 ends the dialog.
    assert!(!timer.on_refresh_outcome(now, timer.epoch(), RefreshOutcome::Done(None)));
    assert!(!timer.on_refresh_outcome(now, timer.epoch(), RefreshOutcome::DialogGone));
}

#[test]
fn a_refresher_that_never_gets_through_gives_up_at_the_end() {
    let t0 = Instant::now();
    let mut timer = SessionTimer::new(t0, 90, true, MIN_SE_FLOOR);
    let mut now = t0;
    let mut refreshes = 0;
    for _ in 0..200 {
        now = timer.poll_timeout();
        match timer.handle_timeout(now) {
            Some(TimerAction::Refresh) => {
                refreshes += 1;
                timer.on_refresh_outcome(now, timer.epoch(), RefreshOutcome::Failed);
            }
            Some(TimerAction::Expired) => break,
            None => {}
        }
    }
    assert_eq!(now, t0 + Duration::from_secs(90));
    // Half-way (45 s), then every 2 s until the end.
    assert_eq!(refreshes, 23);
}

#[test]
fn min_se_is_read_from_a_422_and_big_values_saturate() {
    let mut h = crate::msg::Headers::new();
    h.push("Min-SE", "120;x=y");
    assert_eq!(min_se_of(&h), Some(120));
    assert_eq!(
        SessionExpires::parse("99999999999;refresher=uac").map(|s| s.delta),
        Some(u32::MAX)
    );
}

#[test]
fn a_peer_that_answers_every_refresh_with_422_gets_no_storm() {
    let t0 = Instant::now();
    for min_se in [60, 100, 120] {
        let mut timer = SessionTimer::new(t0, 100, true, MIN_SE_FLOOR);
        let mut now = t0 + Duration::from_secs(50);
        assert_eq!(timer.handle_timeout(now), Some(TimerAction::Refresh));
        let mut sent = vec![now];
        // 422 after 422, as fast as we send: at most one instant retry (when the peer asks
        // for more than we did), then 2 s apart until the session is over.
        loop {
            timer.on_refresh_outcome(now, timer.epoch(), RefreshOutcome::TooSmall(min_se));
            now = timer.poll_timeout();
            match timer.handle_timeout(now) {
                Some(TimerAction::Refresh) => sent.push(now),
                Some(TimerAction::Expired) => break,
                None => {}
            }
            assert!(sent.len() < 100, "{min_se}: {} refreshes", sent.len());
        }
        let instant = sent
            .windows(2)
            .filter(|w| w[1] - w[0] < Duration::from_secs(2))
            .count();
        assert_eq!(instant, usize::from(min_se > 100), "{min_se}: {sent:?}");
    }
}

#[test]
fn an_answer_below_the_minimum_is_read_as_the_minimum() {
    let t0 = Instant::now();
    let mut timer = SessionTimer::new(t0, 100, true, MIN_SE_FLOOR);
    let tiny = SessionExpires {
        delta: 0,
        refresher: Some(Refresher::Uac),
    };
    assert!(timer.on_refresh_outcome(t0, timer.epoch(), RefreshOutcome::Done(Some(tiny))));
    assert_eq!(timer.interval(), MIN_SE_FLOOR);
    assert_eq!(timer.poll_timeout(), t0 + Duration::from_secs(45));
}

#[test]
fn an_answer_to_a_refresh_the_peer_overtook_changes_nothing() {
    let t0 = Instant::now();
    let mut timer = SessionTimer::new(t0, 100, true, MIN_SE_FLOOR);
    let at = t0 + Duration::from_secs(50);
    assert_eq!(timer.handle_timeout(at), Some(TimerAction::Refresh));
    let sent = timer.epoch();
    // The peer refreshes first, and takes the refresher's part.
    let peer = at + Duration::from_secs(1);
    timer.refreshed(peer, 200, false);
    // Our UPDATE's 2xx, naming us, comes after: it must not make us refresh again.
    let late = SessionExpires {
        delta: 100,
        refresher: Some(Refresher::Uac),
    };
    assert!(timer.on_refresh_outcome(peer, sent, RefreshOutcome::Done(Some(late))));
    assert!(!timer.ours());
    assert_eq!(timer.interval(), 200);
    assert_eq!(timer.poll_timeout(), peer + Duration::from_secs(200 - 32));
    // A 481, stale or not, still says the dialog is gone.
    assert!(!timer.on_refresh_outcome(peer, sent, RefreshOutcome::DialogGone));
}

#[test]
fn a_422_asks_more_of_the_next_refresh_without_moving_the_end() {
    let t0 = Instant::now();
    let mut timer = SessionTimer::new(t0, 100, true, MIN_SE_FLOOR);
    let at = t0 + Duration::from_secs(50);
    assert_eq!(timer.handle_timeout(at), Some(TimerAction::Refresh));
    assert!(timer.on_refresh_outcome(at, timer.epoch(), RefreshOutcome::TooSmall(600)));
    assert_eq!(timer.interval(), 600);
    assert_eq!(timer.handle_timeout(at), Some(TimerAction::Refresh));
    assert!(timer.on_refresh_outcome(at, timer.epoch(), RefreshOutcome::Failed));
    let mut now = at;
    while timer.handle_timeout(now) != Some(TimerAction::Expired) {
        now = timer.poll_timeout();
        assert!(now <= t0 + Duration::from_secs(100), "{:?}", now - t0);
    }
    assert_eq!(now, t0 + Duration::from_secs(100));
}

#[test]
fn a_refused_refresh_is_not_tried_again_and_the_session_ends_on_time() {
    let t0 = Instant::now();
    let mut timer = SessionTimer::new(t0, 100, true, MIN_SE_FLOOR);
    let at = t0 + Duration::from_secs(50);
    assert_eq!(timer.handle_timeout(at), Some(TimerAction::Refresh));
    assert!(timer.on_refresh_outcome(at, timer.epoch(), RefreshOutcome::Refused));
    assert_eq!(timer.poll_timeout(), t0 + Duration::from_secs(100));
    assert_eq!(
        timer.handle_timeout(t0 + Duration::from_secs(100)),
        Some(TimerAction::Expired)
    );
}

#[test]
fn the_answer_to_our_invite_says_who_refreshes() {
    let headers = |lines: &[(&str, &str)]| {
        let mut h = crate::msg::Headers::new();
        for (name, value) in lines {
            h.push(name, *value);
        }
        h
    };
    assert_eq!(
        uac_timer_of(&headers(&[("Session-Expires", "1800;refresher=uas")])),
        Some((1800, false))
    );
    assert_eq!(
        uac_timer_of(&headers(&[
            ("Session-Expires", "900;refresher=uac"),
            ("Require", "timer")
        ])),
        Some((900, true))
    );
    // No refresher named: `Require: timer` says it is us.
    assert_eq!(
        uac_timer_of(&headers(&[
            ("Session-Expires", "600"),
            ("Require", "timer")
        ])),
        Some((600, true))
    );
    assert_eq!(
        uac_timer_of(&headers(&[("Session-Expires", "600")])),
        Some((600, false))
    );
    assert_eq!(uac_timer_of(&headers(&[])), None);
    assert_eq!(uac_timer_of(&headers(&[("Session-Expires", "soon")])), None);
}

#[test]
fn after_a_491_the_caller_waits_2_1_to_4_s_and_the_callee_at_most_2_s() {
    let ms = |d: Duration| d.as_millis();
    // The whole of each range is reachable, in steps of 10 ms, and nothing outside it.
    assert_eq!(ms(glare_wait(true, 0)), 2_100);
    assert_eq!(ms(glare_wait(true, 190)), 4_000);
    assert_eq!(ms(glare_wait(false, 0)), 0);
    assert_eq!(ms(glare_wait(false, 200)), 2_000);
    for random in [1, 191, 777, u16::MAX] {
        let owner = ms(glare_wait(true, random));
        let other = ms(glare_wait(false, random));
        assert!(
            (2_100..=4_000).contains(&owner) && owner % 10 == 0,
            "{owner}"
        );
        assert!(other <= 2_000 && other % 10 == 0, "{other}");
    }

    // The refresh goes again after the wait drawn, not the 2 s of other failures.
    let t0 = Instant::now();
    let mut timer = SessionTimer::new(t0, 100, true, MIN_SE_FLOOR);
    let at = timer.poll_timeout();
    assert_eq!(timer.handle_timeout(at), Some(TimerAction::Refresh));
    let wait = glare_wait(true, 37);
    assert!(timer.on_refresh_outcome(at, timer.epoch(), RefreshOutcome::Glare(wait)));
    assert_eq!(timer.poll_timeout(), at + wait);
    assert_eq!(timer.handle_timeout(at + wait), Some(TimerAction::Refresh));

    // A 6 s session refreshed at 3 s: the phone, waiting, gives up at 4 s (6 s less a
    // third), so the retry comes then, not 2.1-4 s after the 491.
    let mut timer = SessionTimer::new(t0, 6, true, 1);
    let at = timer.poll_timeout();
    assert_eq!(at, t0 + Duration::from_secs(3));
    assert_eq!(timer.handle_timeout(at), Some(TimerAction::Refresh));
    let wait = glare_wait(true, 190);
    assert!(timer.on_refresh_outcome(at, timer.epoch(), RefreshOutcome::Glare(wait)));
    assert_eq!(timer.poll_timeout(), t0 + Duration::from_secs(4));
    assert_eq!(
        timer.handle_timeout(t0 + Duration::from_secs(4)),
        Some(TimerAction::Refresh)
    );
    // A failure past that moment: again at the usual pace, while the session lasts.
    let late = t0 + Duration::from_millis(4_500);
    let wait = glare_wait(true, 0);
    assert!(timer.on_refresh_outcome(late, timer.epoch(), RefreshOutcome::Glare(wait)));
    assert_eq!(
        timer.poll_timeout(),
        t0 + Duration::from_secs(6),
        "2.1 s on is past the end"
    );
    assert!(timer.on_refresh_outcome(late, timer.epoch(), RefreshOutcome::Failed));
    assert_eq!(timer.poll_timeout(), t0 + Duration::from_secs(6));
}
