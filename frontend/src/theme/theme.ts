/** The two colour themes; the page follows the system setting until the user picks one. */
export type Theme = "light" | "dark";
