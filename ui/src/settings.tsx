import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { api } from "./api";
import type { Settings } from "./bindings/Settings";
import i18n from "./i18n";

type Ctx = { settings: Settings | null; save: (s: Settings) => Promise<Settings>; reload: () => void };
const SettingsCtx = createContext<Ctx>({ settings: null, save: (s) => Promise.resolve(s), reload: () => {} });

export function applyTheme(theme: Settings["theme"]) {
  const dark = theme === "dark" || (theme === "system" && window.matchMedia?.("(prefers-color-scheme: dark)").matches);
  document.documentElement.dataset.theme = dark ? "dark" : "light";
}

function apply(s: Settings) {
  void i18n.changeLanguage(s.language);
  document.documentElement.lang = s.language;
  applyTheme(s.theme);
}

/** Settings live in the service (validated there), language and theme per user in the app's
 * tauri-plugin-store; this mirrors them. */
export function SettingsProvider({ children }: { children: ReactNode }) {
  const [settings, setSettings] = useState<Settings | null>(null);
  const reload = useCallback(() => {
    api
      .getSettings()
      .then((s) => {
        apply(s);
        setSettings(s);
      })
      .catch(() => applyTheme("system"));
  }, []);
  useEffect(reload, [reload]);
  const save = useCallback(async (s: Settings) => {
    const saved = await api.setSettings(s);
    apply(saved);
    setSettings(saved);
    return saved;
  }, []);
  return <SettingsCtx.Provider value={{ settings, save, reload }}>{children}</SettingsCtx.Provider>;
}

export const useSettings = () => useContext(SettingsCtx);
