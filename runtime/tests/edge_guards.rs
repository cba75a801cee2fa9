//! The edge's WebSocket guards, each on a real connection to 127.0.0.1: the authentication
//! hook, the inbound frame limit, the connection cap and the pong timeout.

use std::net::SocketAddr;
use std::time::Duration;

use axion_runtime::edge::Edge;
use axion_runtime::futures::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _, Message};

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Serves `edge` on an ephemeral port; stops when the sender is dropped.
async fn serve(edge: Edge) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(edge.serve(listener, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Opens `/events` with `headers`; the socket, or the status the handshake was refused with.
async fn connect(addr: SocketAddr, headers: &[(&'static str, &str)]) -> Result<Ws, u16> {
    let mut request = format!("ws://{addr}/events").into_client_request().unwrap();
    for (k, v) in headers {
        request.headers_mut().insert(*k, v.parse().unwrap());
    }
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::client_async(request, tcp),
    )
    .await
    .expect("handshake timed out")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

/// Reads (bounded) until the server ends the connection; whether it did within `within`.
async fn ended_within(ws: &mut Ws, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    for _ in 0..1000 {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => continue,
        }
    }
    false
}

#[tokio::test]
async fn the_authentication_hook_refuses_an_upgrade_without_a_token() {
    let edge = Edge::new(&[]).authenticate(|headers| match headers.get("authorization") {
        Some(v) if v == "Bearer s3cret" => Ok(()),
        _ => Err("no valid bearer token".into()),
    });
    let (addr, _stop) = serve(edge).await;
    // No Origin at all: what any non-browser client sends.
    assert_eq!(connect(addr, &[]).await.err(), Some(401));
    assert_eq!(
        connect(addr, &[("authorization", "Bearer guess")])
            .await
            .err(),
        Some(401)
    );
    let mut ws = connect(addr, &[("authorization", "Bearer s3cret")])
        .await
        .expect("accepted with the token");
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_the_connection_and_small_ones_do_not() {
    let (addr, _stop) = serve(Edge::new(&[]).max_frame_bytes(1024)).await;
    let mut ws = connect(addr, &[]).await.unwrap();
    ws.send(Message::text("x".repeat(512))).await.unwrap();
    assert!(
        !ended_within(&mut ws, Duration::from_millis(300)).await,
        "a small frame is fine"
    );
    ws.send(Message::text("x".repeat(64 * 1024))).await.unwrap();
    assert!(
        ended_within(&mut ws, Duration::from_secs(5)).await,
        "the big frame was accepted"
    );
}

#[tokio::test]
async fn the_connection_cap_refuses_the_next_client_until_one_leaves() {
    let (addr, _stop) = serve(Edge::new(&[]).max_connections(2)).await;
    let first = connect(addr, &[]).await.unwrap();
    let _second = connect(addr, &[]).await.unwrap();
    assert_eq!(connect(addr, &[]).await.err(), Some(503));
    drop(first);
    // The server notices the closed socket and frees its place.
    let mut admitted = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Ok(mut ws) = connect(addr, &[]).await {
            ws.close(None).await.unwrap();
            admitted = true;
            break;
        }
    }
    assert!(admitted, "a place was freed");
}

#[tokio::test]
async fn a_client_that_answers_no_ping_is_dropped() {
    let edge = Edge::new(&[])
        .ping_interval(Duration::from_millis(100))
        .pong_timeout(Duration::from_millis(400));
    let (addr, _stop) = serve(edge).await;
    // A client that reads (and so answers pings) stays.
    let mut live = connect(addr, &[]).await.unwrap();
    assert!(
        !ended_within(&mut live, Duration::from_secs(1)).await,
        "a live client was dropped"
    );
    // One that never reads sends no pong: dropped after the timeout.
    let mut silent = connect(addr, &[]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        ended_within(&mut silent, Duration::from_millis(500)).await,
        "still connected"
    );
}
