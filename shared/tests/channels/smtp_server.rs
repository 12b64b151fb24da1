//! A loopback SMTP server that accepts every mail (or answers RCPT with a scripted reply) and
//! keeps the DATA of each, so tests can read the headers a reply was sent with.

use std::sync::{Arc, Mutex};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

pub struct SmtpServer {
    pub port: u16,
    mails: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpServer {
    /// A server answering RCPT TO with `rcpt_reply` (e.g. `"250 OK"` or `"550 5.1.1 no such
    /// user"`).
    pub async fn start(rcpt_reply: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let (store, rcpt) = (mails.clone(), rcpt_reply.to_owned());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, store.clone(), rcpt.clone()));
            }
        });
        Self { port, mails, task }
    }

    pub fn mails(&self) -> Vec<String> {
        self.mails.lock().unwrap().clone()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn session(stream: TcpStream, mails: Arc<Mutex<Vec<String>>>, rcpt_reply: String) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 standin ESMTP\r\n").await;
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" | "HELO" => "250-standin\r\n250 8BITMIME".to_owned(),
            "RCPT" => rcpt_reply.clone(),
            "DATA" => {
                let _ = write.write_all(b"354 go ahead\r\n").await;
                let mut mail = String::new();
                while let Ok(Some(data)) = lines.next_line().await {
                    if data == "." {
                        break;
                    }
                    mail.push_str(&data);
                    mail.push_str("\r\n");
                }
                mails.lock().unwrap().push(mail);
                "250 2.0.0 queued".to_owned()
            }
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => "250 OK".to_owned(),
        };
        if write
            .write_all(format!("{reply}\r\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}
