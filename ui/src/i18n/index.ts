import i18n from "i18next";
import { initReactI18next } from "react-i18next";
import en from "./en";
import zhCN from "./zh-CN";
import type { Language } from "../bindings/Language";

export const LANGUAGES: { code: Language; label: string }[] = [
  { code: "en", label: "English" },
  { code: "zh-CN", label: "简体中文" },
];

export const resources = { en: { translation: en }, "zh-CN": { translation: zhCN } } as const;

void i18n.use(initReactI18next).init({
  resources,
  lng: "en",
  fallbackLng: false,
  interpolation: { escapeValue: false },
  returnNull: false,
});

export default i18n;
