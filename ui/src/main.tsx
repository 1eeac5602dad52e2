import "./locale-guard";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import "./i18n";
import { ServiceGate } from "./components/ServiceGate";
import { SettingsProvider } from "./settings";
import "./styles.css";

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <SettingsProvider>
        <ServiceGate>
          <App />
        </ServiceGate>
      </SettingsProvider>
    </StrictMode>,
  );
}
