// React access to one canvas: its store (narrow selectors only) and its kernel callbacks.
import { createContext, useContext } from "react";
import { useStore } from "zustand";
import type { CanvasState, CanvasStore } from "./store";
import type { PatchPayload } from "./types";

export const StoreContext = createContext<CanvasStore | null>(null);

export function useCanvasStore(): CanvasStore {
  const store = useContext(StoreContext);
  if (!store) throw new Error("flownb canvas components need a StoreContext");
  return store;
}

/** Subscribe to one slice of the canvas state; re-renders only when that slice changes. */
export function useCanvas<T>(selector: (state: CanvasState) => T): T {
  return useStore(useCanvasStore(), selector);
}

/** The kernel's event callables; each is a no-op (and `has` false) when standalone. */
export interface Kernel {
  has: { patch: boolean; validate: boolean; inspect: boolean; save: boolean; generate: boolean };
  patch(payload: PatchPayload): void;
  validate(): void;
  inspect(id: string): void;
  save(): void;
  generate(intent: string): void;
}

export const standaloneKernel: Kernel = {
  has: { patch: false, validate: false, inspect: false, save: false, generate: false },
  patch() {},
  validate() {},
  inspect() {},
  save() {},
  generate() {},
};

export const KernelContext = createContext<Kernel>(standaloneKernel);

export function useKernel(): Kernel {
  return useContext(KernelContext);
}
