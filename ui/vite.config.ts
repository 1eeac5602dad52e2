import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Tauri serves the built files; `tauri dev` uses the dev server on a fixed port.
export default defineConfig({
  plugins: [react()],
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: { target: "safari15", outDir: "dist", emptyOutDir: true },
  test: { environment: "node" },
});
