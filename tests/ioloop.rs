//! The IOLoop on its own: callbacks, timers, end-of-iteration hooks, socket
//! handlers, waking from other threads, the executor, PeriodicCallback, and
//! containment of panics.
mod common;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use mio::Interest;
use squall::ioloop::{IOLoop, PeriodicCallback, TimeoutHandle};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------- callbacks

#[test]
fn add_callback_is_fifo_and_never_runs_inside_the_caller() {
    let order: Log<&'static str> = log();
    run_loop(|ioloop| {
        for name in ["a", "b", "c"] {
            let o = order.clone();
            ioloop.add_callback(move || o.borrow_mut().push(name));
        }
        order.borrow_mut().push("added");
        ioloop.add_callback(stop);
    });
    assert_eq!(order.take(), vec!["added", "a", "b", "c"]);
}

#[test]
fn a_callback_that_re_adds_itself_cannot_starve_timers_or_io() {
    // Callbacks added during a pass wait for the next pass, and the loop
    // polls (with a zero timeout) between passes, so a timer still fires.
    fn spin(count: Rc<Cell<u64>>) {
        count.set(count.get() + 1);
        IOLoop::current().add_callback(move || spin(count));
    }
    let spins = Rc::new(Cell::new(0));
    let fired = Rc::new(Cell::new(false));
    run_loop(|ioloop| {
        spin(spins.clone());
        let f = fired.clone();
        ioloop.call_later(ms(5), move || {
            f.set(true);
            stop();
        });
    });
    assert!(fired.get());
    assert!(spins.get() > 1, "the spinner ran {} times", spins.get());
}

#[test]
fn end_of_iteration_hooks_run_after_the_callbacks_of_the_pass_before_polling() {
    let order: Log<&'static str> = log();
    run_loop(|ioloop| {
        let o = order.clone();
        ioloop.add_callback(move || o.borrow_mut().push("callback 1"));
        let o = order.clone();
        ioloop.add_end_of_iteration(move || {
            o.borrow_mut().push("hook");
            let o2 = o.clone();
            // A hook added by a hook still runs before the poll...
            IOLoop::current().add_end_of_iteration(move || o2.borrow_mut().push("hook 2"));
            let o3 = o.clone();
            // ...a callback added by a hook waits for the next pass.
            IOLoop::current().add_callback(move || {
                o3.borrow_mut().push("next pass");
                stop();
            });
        });
        let o = order.clone();
        ioloop.add_callback(move || o.borrow_mut().push("callback 2"));
    });
    assert_eq!(
        order.take(),
        vec!["callback 1", "callback 2", "hook", "hook 2", "next pass"]
    );
}

#[test]
fn stop_before_start_makes_start_return_at_once_and_the_loop_restarts() {
    let ran = Rc::new(Cell::new(0));
    run_loop(|ioloop| {
        let r = ran.clone();
        ioloop.add_callback(move || r.set(r.get() + 1));
        ioloop.stop();
        // Returns without running the queued callback (Tornado semantics).
        ioloop.start();
        assert_eq!(ran.get(), 0);
        assert!(!ioloop.is_running());
        // The outer start (in run_loop) runs it; stop from there.
        ioloop.add_callback(stop);
    });
    assert_eq!(ran.get(), 1);
}

#[test]
fn current_is_the_same_loop_on_one_thread_and_another_on_another() {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        // First use creates this thread's loop; later calls return it.
        IOLoop::current().add_callback(move || {
            tx.send("ran on the other thread's loop").expect("send");
            IOLoop::current().stop();
        });
        IOLoop::current().start();
    });
    let theirs = rx.recv_timeout(GUARD);
    worker.join().expect("worker");
    assert_eq!(theirs, Ok("ran on the other thread's loop"));
    // Ours is untouched by theirs: nothing is queued here.
    let ran_here = Rc::new(Cell::new(false));
    run_loop(|ioloop| {
        let r = ran_here.clone();
        IOLoop::current().add_callback(move || r.set(true));
        ioloop.add_callback(stop);
    });
    assert!(ran_here.get());
}

// ------------------------------------------------------------------- timers

#[test]
fn timers_fire_in_deadline_order_and_equal_deadlines_fifo() {
    let fired: Log<String> = log();
    run_loop(|ioloop| {
        // Added out of order.
        for delay in [30u64, 10, 25, 0, 15, 5] {
            let f = fired.clone();
            ioloop.call_later(ms(delay), move || f.borrow_mut().push(format!("{delay}ms")));
        }
        // Three with the very same deadline: in the order added.
        let same = ioloop.time() + ms(20);
        for name in ["same-1", "same-2", "same-3"] {
            let f = fired.clone();
            ioloop.call_at(same, move || f.borrow_mut().push(name.into()));
        }
        ioloop.call_later(ms(40), stop);
    });
    assert_eq!(
        fired.take(),
        vec!["0ms", "5ms", "10ms", "15ms", "same-1", "same-2", "same-3", "25ms", "30ms"]
    );
}

#[test]
fn timers_never_fire_early() {
    let late_by = slot();
    run_loop(|ioloop| {
        let deadline = ioloop.time() + ms(20);
        let l = late_by.clone();
        ioloop.call_at(deadline, move || {
            let now = IOLoop::current().time();
            *l.borrow_mut() = Some(now >= deadline);
            stop();
        });
    });
    assert_eq!(late_by.take(), Some(true));
}

/// Sets a flag when dropped: shows that a closure was freed.
struct DropFlag(Rc<Cell<bool>>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn a_cancelled_timer_never_fires_and_is_freed_at_once() {
    let fired = Rc::new(Cell::new(false));
    let freed = Rc::new(Cell::new(false));
    let observed = slot();
    run_loop(|ioloop| {
        let before = ioloop.timer_count();
        let (f, guard) = (fired.clone(), DropFlag(freed.clone()));
        let handle = ioloop.call_later(ms(5), move || {
            let _keep = &guard;
            f.set(true);
        });
        let with_timer = ioloop.timer_count();
        let removed = ioloop.remove_timeout(handle);
        *observed.borrow_mut() = Some((
            with_timer - before,
            ioloop.timer_count() - before,
            removed,
            freed.get(),
            // A second cancel, and a cancel of a fired timer, are no-ops.
            ioloop.remove_timeout(handle),
        ));
        // Wait well past the deadline before deciding it never fired.
        ioloop.call_later(ms(30), stop);
    });
    assert_eq!(observed.take(), Some((1, 0, true, true, false)));
    assert!(!fired.get());
}

#[test]
fn a_due_timer_cancelled_earlier_in_the_same_pass_does_not_fire() {
    // Both the callback and the timer are due in the first pass. The loop
    // takes the due timers out before running anything; a callback that
    // runs first in that pass (say, a response that arrived just in time)
    // cancels the timer (its timeout). "Cancelled never fires" must hold.
    let fired = Rc::new(Cell::new(false));
    let removed = slot();
    run_loop(|ioloop| {
        let f = fired.clone();
        let handle = ioloop.call_at(ioloop.time(), move || f.set(true));
        let r = removed.clone();
        ioloop.add_callback(move || {
            let ioloop = IOLoop::current();
            *r.borrow_mut() = Some((ioloop.remove_timeout(handle), ioloop.timer_count()));
        });
        ioloop.call_later(ms(10), stop);
    });
    // The guard timer is cancelled only after the loop, so 2 remain: the
    // guard and the stop timer.
    assert_eq!(removed.take(), Some((true, 2)));
    assert!(!fired.get(), "a cancelled timer fired");
}

#[test]
fn a_timer_can_cancel_a_later_timer_due_in_the_same_pass() {
    let fired: Log<&'static str> = log();
    run_loop(|ioloop| {
        let deadline = ioloop.time();
        let second: Rc<Cell<Option<TimeoutHandle>>> = Rc::new(Cell::new(None));
        let (f, s) = (fired.clone(), second.clone());
        ioloop.call_at(deadline, move || {
            f.borrow_mut().push("first");
            if let Some(h) = s.take() {
                IOLoop::current().remove_timeout(h);
            }
        });
        let f = fired.clone();
        second.set(Some(
            ioloop.call_at(deadline, move || f.borrow_mut().push("second")),
        ));
        ioloop.call_later(ms(10), stop);
    });
    assert_eq!(fired.take(), vec!["first"]);
}

#[test]
fn thousands_of_cancellations_leave_the_rest_in_order() {
    // Enough cancellations to trigger the heap compaction (512 and half).
    let fired: Log<usize> = log();
    let counts = slot();
    run_loop(|ioloop| {
        let base = ioloop.time() + ms(5);
        let baseline = ioloop.timer_count();
        let mut handles = Vec::new();
        for i in 0..3000usize {
            // Deadlines interleave: i % 7 shuffles insertion vs deadline.
            let deadline = base + Duration::from_micros(((i * 7919) % 3000) as u64 * 3);
            let f = fired.clone();
            handles.push((i, ioloop.call_at(deadline, move || f.borrow_mut().push(i))));
        }
        let mut cancelled = 0;
        for (i, h) in &handles {
            if i % 4 != 0 {
                assert!(ioloop.remove_timeout(*h));
                cancelled += 1;
            }
        }
        *counts.borrow_mut() = Some((cancelled, ioloop.timer_count() - baseline));
        ioloop.call_later(ms(40), stop);
    });
    assert_eq!(counts.take(), Some((2250, 750)));
    let fired = fired.take();
    assert_eq!(fired.len(), 750);
    assert!(fired.iter().all(|i| i % 4 == 0), "a cancelled timer fired");
    // In deadline order (ties impossible here: 7919 is coprime to 3000).
    let deadline_rank = |i: &usize| (i * 7919) % 3000;
    assert!(fired
        .windows(2)
        .all(|w| deadline_rank(&w[0]) < deadline_rank(&w[1])));
}

// ---------------------------------------------------------- socket handlers

#[test]
fn add_update_remove_handler_on_a_raw_socket() {
    // A UDP pair keeps this about the loop, not TCP.
    let events: Log<String> = log();
    let counts = slot();
    run_loop(|ioloop| {
        let baseline = ioloop.handler_count();
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let sock = Rc::new(RefCell::new(mio::net::UdpSocket::bind(any).expect("bind")));
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind peer");
        let addr = sock.borrow().local_addr().expect("addr");
        let token_cell = Rc::new(Cell::new(None));
        let (s, e, t) = (sock.clone(), events.clone(), token_cell.clone());
        let token = ioloop
            .add_handler(&mut *sock.borrow_mut(), Interest::READABLE, move |ready| {
                let ioloop = IOLoop::current();
                if ready.readable {
                    // Edge-triggered: drain until WouldBlock.
                    let mut buf = [0u8; 64];
                    let mut n = 0;
                    while let Ok(len) = s.borrow().recv(&mut buf) {
                        assert_eq!(&buf[..len], b"ping");
                        n += 1;
                    }
                    e.borrow_mut().push(format!("readable: {n} datagrams"));
                    let token = t.get().expect("token");
                    ioloop
                        .update_handler(&mut *s.borrow_mut(), token, Interest::WRITABLE)
                        .expect("update");
                } else if ready.writable {
                    // A handler may remove itself.
                    let token = t.get().expect("token");
                    ioloop.deregister(&mut *s.borrow_mut()).expect("deregister");
                    ioloop.remove_handler(token);
                    e.borrow_mut()
                        .push(format!("writable; handlers now {}", ioloop.handler_count()));
                    ioloop.add_callback(stop);
                }
            })
            .expect("add_handler");
        token_cell.set(Some(token));
        let during = ioloop.handler_count();
        for _ in 0..3 {
            peer.send_to(b"ping", addr).expect("send");
        }
        *counts.borrow_mut() = Some((baseline, during));
    });
    let (baseline, during) = counts.take().expect("recorded");
    assert_eq!(during, baseline + 1);
    let events = events.take();
    // The three datagrams may arrive in one or more readable events.
    let total: usize = events
        .iter()
        .filter_map(|e| e.strip_prefix("readable: "))
        .map(|e| {
            e.trim_end_matches(" datagrams")
                .parse::<usize>()
                .expect("n")
        })
        .sum();
    assert_eq!(total, 3, "{events:?}");
    assert_eq!(
        events.last(),
        Some(&format!("writable; handlers now {baseline}"))
    );
}

// ------------------------------------------------------ other threads, pool

#[test]
fn add_callback_from_another_thread_wakes_an_idle_loop() {
    // 100 round trips. Between them the loop has nothing to do but sleep in
    // poll until the 10 s guard; only the waker can get it out in time.
    const ROUNDS: usize = 100;
    let loop_thread = std::thread::current().id();
    let seen: Log<bool> = log();
    let worker = slot();
    run_loop(|ioloop| {
        let handle = ioloop.handle();
        let (tx, rx) = mpsc::channel::<()>();
        *worker.borrow_mut() = Some(std::thread::spawn(move || {
            for i in 0..ROUNDS {
                let tx = tx.clone();
                handle.add_callback(move || {
                    let on_loop = std::thread::current().id() == loop_thread;
                    SEEN.with(|s| s.borrow_mut().push(on_loop));
                    tx.send(()).expect("reply");
                    if i == ROUNDS - 1 {
                        stop();
                    }
                });
                // Wait for the loop to run it before sending the next one.
                rx.recv_timeout(GUARD)
                    .expect("loop did not run the callback");
            }
        }));
    });
    seen.borrow_mut().extend(SEEN.with(|s| s.take()));
    worker
        .take()
        .expect("worker")
        .join()
        .expect("worker thread");
    let seen = seen.take();
    assert_eq!(seen.len(), ROUNDS);
    assert!(seen.iter().all(|&on_loop| on_loop));
}

thread_local! {
    /// Where remote callbacks (which must be `Send`) record what they saw.
    static SEEN: RefCell<Vec<bool>> = const { RefCell::new(Vec::new()) };
}

#[test]
fn run_in_executor_runs_off_the_loop_and_delivers_on_it() {
    let result = slot();
    run_loop(|ioloop| {
        let loop_thread = std::thread::current().id();
        let r = result.clone();
        ioloop.run_in_executor(
            move || (std::thread::current().id(), (1..=10u64).product::<u64>()),
            move |(worker_thread, value)| {
                *r.borrow_mut() = Some((
                    worker_thread != loop_thread,
                    std::thread::current().id() == loop_thread,
                    value,
                ));
                stop();
            },
        );
    });
    assert_eq!(result.take(), Some((true, true, 3_628_800)));
}

#[test]
fn a_panicking_executor_job_drops_its_callback_and_the_loop_goes_on() {
    let called = Rc::new(Cell::new(false));
    let dropped = Rc::new(Cell::new(false));
    let after = slot();
    run_loop(|ioloop| {
        ioloop.set_executor_threads(1);
        let (c, guard) = (called.clone(), DropFlag(dropped.clone()));
        ioloop.run_in_executor(
            || -> u32 { panic!("job panics on purpose") },
            move |_| {
                let _keep = &guard;
                c.set(true);
            },
        );
        // The single worker survives the panic and runs the next job.
        let a = after.clone();
        ioloop.run_in_executor(
            || 7u32,
            move |v| {
                *a.borrow_mut() = Some(v);
                stop();
            },
        );
    });
    assert_eq!(after.take(), Some(7));
    assert!(!called.get(), "done of a panicked job must not run");
    assert!(dropped.get(), "done of a panicked job must be freed");
}

// --------------------------------------------------------- PeriodicCallback

#[test]
fn periodic_callback_runs_until_stopped_from_inside() {
    let runs = Rc::new(Cell::new(0));
    let running_after = slot();
    let keep: Slot<Rc<RefCell<Option<PeriodicCallback>>>> = slot();
    run_loop(|ioloop| {
        let holder: Rc<RefCell<Option<PeriodicCallback>>> = Rc::new(RefCell::new(None));
        let weak = Rc::downgrade(&holder);
        let r = runs.clone();
        let pc = PeriodicCallback::new(ms(2), move || {
            r.set(r.get() + 1);
            if r.get() == 3 {
                if let Some(h) = weak.upgrade() {
                    h.borrow().as_ref().expect("pc").stop();
                }
            }
        });
        pc.start();
        *holder.borrow_mut() = Some(pc);
        *keep.borrow_mut() = Some(holder.clone());
        // Long enough for several more periods: none may run.
        let (h, ra) = (holder.clone(), running_after.clone());
        wait_until(
            {
                let r = runs.clone();
                move || r.get() >= 3
            },
            move || {
                IOLoop::current().call_later(ms(30), move || {
                    *ra.borrow_mut() = Some(h.borrow().as_ref().expect("pc").is_running());
                    stop();
                });
            },
        );
        let _ = ioloop;
    });
    assert_eq!(runs.get(), 3, "stop() from inside must stick");
    assert_eq!(running_after.take(), Some(false));
}

#[test]
fn dropping_a_periodic_callback_stops_it_and_frees_its_timer() {
    let runs = Rc::new(Cell::new(0));
    let counts = slot();
    run_loop(|ioloop| {
        let baseline = ioloop.timer_count();
        let r = runs.clone();
        let pc = PeriodicCallback::new(ms(1), move || r.set(r.get() + 1));
        pc.start();
        let with_pc = ioloop.timer_count();
        drop(pc);
        *counts.borrow_mut() = Some((with_pc - baseline, ioloop.timer_count() - baseline));
        ioloop.call_later(ms(20), stop);
    });
    assert_eq!(counts.take(), Some((1, 0)));
    assert_eq!(runs.get(), 0);
}

// ------------------------------------------------------------------- panics

#[test]
fn a_panic_in_a_callback_or_timer_is_contained_and_the_loop_goes_on() {
    let ran: Log<&'static str> = log();
    let panics = run_loop_counting_panics(false, |ioloop| {
        ioloop.add_callback(|| panic!("callback panics on purpose"));
        let r = ran.clone();
        ioloop.add_callback(move || r.borrow_mut().push("callback after the panic"));
        ioloop.call_later(ms(1), || panic!("timer panics on purpose"));
        let r = ran.clone();
        ioloop.call_later(ms(5), move || {
            r.borrow_mut().push("timer after the panic");
            stop();
        });
    });
    assert_eq!(panics, 2);
    assert_eq!(
        ran.take(),
        vec!["callback after the panic", "timer after the panic"]
    );
}
