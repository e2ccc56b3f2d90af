//! Helpers shared by the integration tests.
//!
//! Every test runs its own [`IOLoop`] on its own thread (cargo runs each
//! test on a fresh thread) and follows three rules:
//!
//! * **Nothing can hang.** [`run_loop`] arms a guard timer that stops the
//!   loop after [`GUARD`]; the test then fails with "timed out".
//! * **No sleeps as synchronization.** Tests drive the loop and stop it from
//!   a callback once the awaited thing happened; [`wait_until`] re-checks a
//!   condition on a 1 ms timer when there is no event to hook.
//! * **Assertions inside callbacks count.** The loop catches panics (that is
//!   one of its features), which would swallow a failing `assert!` in a
//!   callback. So a panic hook counts panics per thread and stops the loop at
//!   once; [`run_loop`] fails the test if any happened.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::Once;
use std::time::Duration;

use squall::ioloop::IOLoop;

/// Longest any test may run its loop.
pub const GUARD: Duration = Duration::from_secs(10);

thread_local! {
    /// Panics seen on this thread since the last `run_loop` began.
    static PANICS: Cell<usize> = const { Cell::new(0) };
    /// The loop to stop when a panic happens on this thread (`None`: don't).
    static STOP_ON_PANIC: RefCell<Option<IOLoop>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = PANICS.try_with(|p| p.set(p.get() + 1));
            let _ = STOP_ON_PANIC.try_with(|s| {
                if let Ok(s) = s.try_borrow() {
                    if let Some(l) = s.as_ref() {
                        l.stop();
                    }
                }
            });
            default(info);
        }));
    });
}

/// Run `setup` on a fresh loop, start it, and return once a callback calls
/// `IOLoop::current().stop()`. Fails the test if the guard timer fired or
/// any callback panicked (a failed `assert!` inside the loop).
pub fn run_loop(setup: impl FnOnce(&IOLoop)) {
    let panics = run_loop_counting_panics(true, setup);
    assert_eq!(
        panics, 0,
        "a callback panicked on the loop (see the output above)"
    );
}

/// Like [`run_loop`] but returns how many panics happened on the loop thread
/// instead of failing; with `stop_on_panic` false a panic does not stop the
/// loop (for testing that the loop contains panics).
pub fn run_loop_counting_panics(stop_on_panic: bool, setup: impl FnOnce(&IOLoop)) -> usize {
    install_panic_hook();
    let ioloop = IOLoop::new().expect("create IOLoop");
    ioloop.make_current();
    PANICS.with(|p| p.set(0));
    if stop_on_panic {
        STOP_ON_PANIC.with(|s| *s.borrow_mut() = Some(ioloop.clone()));
    }
    let timed_out = Rc::new(Cell::new(false));
    let flag = Rc::clone(&timed_out);
    let guard = ioloop.call_later(GUARD, move || {
        flag.set(true);
        IOLoop::current().stop();
    });
    setup(&ioloop);
    ioloop.start();
    ioloop.remove_timeout(guard);
    STOP_ON_PANIC.with(|s| s.borrow_mut().take());
    IOLoop::clear_current();
    let panics = PANICS.with(|p| p.get());
    assert!(
        !timed_out.get(),
        "timed out after {GUARD:?}: the test never stopped the loop ({panics} panics)"
    );
    panics
}

/// Stop the current loop.
pub fn stop() {
    IOLoop::current().stop();
}

/// Run `then` on the loop once `cond()` holds, checking now and then every
/// millisecond. For waiting on things no event announces (bytes reaching a
/// server's buffer, a count reaching a value). Bounded by the guard timer.
pub fn wait_until(cond: impl Fn() -> bool + 'static, then: impl FnOnce() + 'static) {
    wait_boxed(Box::new(cond), Box::new(then));
}

fn wait_boxed(cond: Box<dyn Fn() -> bool>, then: Box<dyn FnOnce()>) {
    if cond() {
        then();
        return;
    }
    IOLoop::current().call_later(Duration::from_millis(1), move || wait_boxed(cond, then));
}

/// Run `then` after `n` more loop iterations (each `add_callback` hop is
/// one iteration). For "this must not have happened" checks: anything the
/// framework queued before the first hop runs before `then`.
pub fn after_iterations(n: usize, then: impl FnOnce() + 'static) {
    if n == 0 {
        then();
        return;
    }
    IOLoop::current().add_callback(move || after_iterations(n - 1, then));
}

/// A blocking std client connected to `addr`, with a read timeout so that a
/// test thread can never block forever.
pub fn client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(GUARD)).expect("read timeout");
    s.set_write_timeout(Some(GUARD)).expect("write timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Non-blocking read of whatever `s` has now, appended to `into`. Returns
/// true once the peer closed (EOF).
pub fn drain_nonblocking(s: &mut TcpStream, into: &mut Vec<u8>) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("client read failed: {e}"),
        }
    }
}

/// A shared slot that a callback fills and the test reads after the loop.
pub type Slot<T> = Rc<RefCell<Option<T>>>;

/// An empty [`Slot`].
pub fn slot<T>() -> Slot<T> {
    Rc::new(RefCell::new(None))
}

/// A shared log of events, in the order they happened.
pub type Log<T> = Rc<RefCell<Vec<T>>>;

/// An empty [`Log`].
pub fn log<T>() -> Log<T> {
    Rc::new(RefCell::new(Vec::new()))
}

/// A connected pair on 127.0.0.1: an [`IOStream`] on the current loop (the
/// "server" side under test) and a blocking std client socket. Made
/// synchronously before the loop starts: the kernel completes the handshake
/// from the listen backlog, so connect and accept return at once.
pub fn stream_pair() -> (squall::iostream::IOStream, TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = client(listener.local_addr().expect("local addr"));
    let (server, _) = listener.accept().expect("accept");
    server.set_nonblocking(true).expect("nonblocking");
    let stream = squall::iostream::IOStream::new(mio::net::TcpStream::from_std(server))
        .expect("register stream");
    (stream, client)
}

/// Make `stream`'s end of the connection disappear without a trace, like a
/// peer whose host lost power: no FIN, no RST now. The socket is switched
/// to `TCP_REPAIR` mode (as CRIU does to checkpoint a connection), in which
/// closing it sends nothing; the kernel then forgets it. The other end
/// learns only if it sends something: its next packet (a keep-alive probe,
/// say) meets no socket and is answered with an RST.
///
/// Needs `CAP_NET_ADMIN` (tests run as root, on the CI machine too); fails
/// the test, rather than passing it vacuously, without it.
pub fn vanish(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option of its size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_REPAIR,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "TCP_REPAIR refused ({}): vanishing a peer needs CAP_NET_ADMIN",
        std::io::Error::last_os_error()
    );
    drop(stream);
}
