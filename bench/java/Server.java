// Benchmark server: the JDK's own HTTP server (com.sun.net.httpserver) on a pool of 4
// threads, a handler a few frames deep; wrk's Connection: close makes every request a new
// connection. usage: java Server.java PORT
import com.sun.net.httpserver.*;
import java.io.*;
import java.net.*;
import java.util.concurrent.*;

public class Server {
    static String priceOf(String sku) { return "{\"sku\":\"" + sku + "\",\"price\":" + (100 + sku.length()) + "}"; }

    static byte[] render(String path) {
        StringBuilder b = new StringBuilder("[");
        for (String p : path.split("/")) if (!p.isEmpty()) b.append(b.length() > 1 ? "," : "").append(priceOf(p));
        return b.append("]").toString().getBytes();
    }

    public static void main(String[] args) throws Exception {
        HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", Integer.parseInt(args[0])), 256);
        s.createContext("/", ex -> {
            byte[] body = render(ex.getRequestURI().getPath());
            ex.sendResponseHeaders(200, body.length);
            try (OutputStream o = ex.getResponseBody()) { o.write(body); }
        });
        s.setExecutor(Executors.newFixedThreadPool(4));
        s.start();
        System.out.println("PORT " + args[0]);
    }
}
