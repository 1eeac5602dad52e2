import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { api } from "./api";
import type { DockerStatus } from "./bindings/DockerStatus";
import type { Language } from "./bindings/Language";
import { DockerBadge } from "./components/DockerBadge";
import { LANGUAGES } from "./i18n";
import { GpusPage } from "./pages/GpusPage";
import { PortsPage } from "./pages/PortsPage";
import { ReplicaSetsPage } from "./pages/ReplicaSetsPage";
import { VolumesPage } from "./pages/VolumesPage";
import { ImagesPage } from "./pages/ImagesPage";
import { CatalogPage } from "./pages/CatalogPage";
import { JobsTray } from "./components/JobsTray";
import { SettingsPage } from "./pages/SettingsPage";
import { SystemPage } from "./pages/SystemPage";
import { UsersPage } from "./pages/UsersPage";
import { useSettings } from "./settings";

// Only pages that work are listed; later capabilities add theirs here.
const PAGES = [
  { id: "gpus", Page: GpusPage },
  { id: "replicasets", Page: ReplicaSetsPage },
  { id: "volumes", Page: VolumesPage },
  { id: "images", Page: ImagesPage },
  { id: "catalog", Page: CatalogPage },
  { id: "ports", Page: PortsPage },
  { id: "users", Page: UsersPage },
  { id: "system", Page: SystemPage },
  { id: "settings", Page: SettingsPage },
] as const;
type PageId = (typeof PAGES)[number]["id"];

export function App() {
  const { t } = useTranslation();
  const { settings, save } = useSettings();
  const [page, setPage] = useState<PageId>("gpus");
  const [docker, setDocker] = useState<DockerStatus | null>(null);

  useEffect(() => {
    void api.dockerStatus().then(setDocker);
    const un = api.onDockerStatus(setDocker);
    return () => void un.then((f) => f());
  }, []);

  const setLanguage = (language: Language) => {
    if (settings) void save({ ...settings, language });
  };
  const Page = PAGES.find((p) => p.id === page)?.Page ?? GpusPage;

  return (
    <div className="shell">
      <nav className="sidebar" aria-label="main">
        <div className="brand">
          <img src="/icon.svg" alt="" width={28} height={28} />
          <span>{t("app.name")}</span>
        </div>
        {PAGES.map((p) => (
          <button
            key={p.id}
            type="button"
            className={p.id === page ? "nav active" : "nav"}
            aria-current={p.id === page ? "page" : undefined}
            data-testid={`nav-${p.id}`}
            onClick={() => setPage(p.id)}
          >
            {t(`nav.${p.id}`)}
          </button>
        ))}
      </nav>
      <div className="main">
        <header className="topbar">
          <DockerBadge status={docker} />
          <select
            aria-label="language"
            data-testid="language-switch"
            value={settings?.language ?? "en"}
            onChange={(e) => setLanguage(e.target.value as Language)}
          >
            {LANGUAGES.map((l) => (
              <option key={l.code} value={l.code}>
                {l.label}
              </option>
            ))}
          </select>
        </header>
        <main>
          <JobsTray />
          <Page />
        </main>
      </div>
    </div>
  );
}
