// Runs Kafka's own command-line tools (kafka-tools 4.4.0 main classes) one after another in ONE JVM, so
// the matrix pays for one JVM start instead of one per command. Protocol, one JSON object per line:
//   stdin:  {"main": "org.apache.kafka.tools.TopicCommand", "args": ["--bootstrap-server", ...], "stdin": "..."}
//   stdout: {"exit": 0, "out": "...", "err": "..."}
// The tools end with org.apache.kafka.common.utils.internals.Exit.exit(code); the exit procedure is replaced by
// one that throws, so a tool's exit code is reported instead of ending the JVM.
import java.io.*;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.kafka.common.utils.internals.Exit;

public class ToolRunner {
    static class ToolExit extends RuntimeException {
        final int code;

        ToolExit(int code) {
            super("exit " + code, null, false, false);
            this.code = code;
        }
    }

    static Integer firstExit = null;

    static void exitOnce(int code) {
        if (firstExit == null) firstExit = code;
    }

    public static void main(String[] args) throws Exception {
        ObjectMapper json = new ObjectMapper();
        PrintStream realOut = System.out;
        PrintStream realErr = System.err;
        InputStream realIn = System.in;
        // Some tools catch Throwable around their own Exit.exit(0) and exit again with 1: the first exit wins.
        Exit.setExitProcedure((code, message) -> { exitOnce(code); throw new ToolExit(code); });
        Exit.setHaltProcedure((code, message) -> { exitOnce(code); throw new ToolExit(code); });
        BufferedReader requests = new BufferedReader(new InputStreamReader(realIn, StandardCharsets.UTF_8));
        String line;
        while ((line = requests.readLine()) != null) {
            if (line.isBlank()) continue;
            JsonNode request = json.readTree(line);
            List<String> argv = new ArrayList<>();
            request.get("args").forEach(a -> argv.add(a.asText()));
            String input = request.has("stdin") ? request.get("stdin").asText() : "";
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            int code = 0;
            firstExit = null;
            try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
                 PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
                System.setOut(o);
                System.setErr(e);
                System.setIn(new ByteArrayInputStream(input.getBytes(StandardCharsets.UTF_8)));
                try {
                    Method main = Class.forName(request.get("main").asText()).getMethod("main", String[].class);
                    main.invoke(null, (Object) argv.toArray(new String[0]));
                } catch (InvocationTargetException ex) {
                    Throwable cause = ex.getCause();
                    if (cause instanceof ToolExit) code = ((ToolExit) cause).code;
                    else {
                        code = 255;
                        cause.printStackTrace(e);
                    }
                } catch (ToolExit ex) {
                    code = ex.code;
                } catch (Throwable ex) {
                    code = 255;
                    ex.printStackTrace(e);
                } finally {
                    System.out.flush();
                    System.err.flush();
                    System.setOut(realOut);
                    System.setErr(realErr);
                    System.setIn(realIn);
                }
            }
            if (firstExit != null) code = firstExit;
            ObjectNode reply = json.createObjectNode();
            reply.put("exit", code);
            reply.put("out", out.toString(StandardCharsets.UTF_8));
            reply.put("err", err.toString(StandardCharsets.UTF_8));
            realOut.println(json.writeValueAsString(reply));
            realOut.flush();
        }
    }
}
